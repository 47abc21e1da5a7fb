//! The API-server stand-in on the wire: TLS with the test CA, bearer-token
//! callers, the two review endpoints and their errors, keep-alive, the
//! failure modes, going down and coming back, and a real Envoy reaching it
//! through the cluster e2e tests use.

use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kfauth_testkit::apiserver::conformance::report_skipped;
use kfauth_testkit::apiserver::fixtures::{
    role_binding, Subject, USER, USER_NAMESPACE, VIEWER_GROUP,
};
use kfauth_testkit::apiserver::{
    subject_access_review, token_review, validate_sar_request, validate_token_review_request,
    AccessRequest, ApiMode, ApiServer, Review, TestCa, API_SERVER_CLUSTER, API_SERVER_SNI,
    SAR_PATH, TOKEN_REVIEW_PATH,
};
use kfauth_testkit::client;
use kfauth_testkit::listener::free_port;
use serde_json::{json, Value};

fn create_run(user: &str) -> Value {
    subject_access_review::request_body(
        &AccessRequest::user(user)
            .can("create", "pipelines.kubeflow.org", "runs")
            .in_namespace(USER_NAMESPACE),
    )
}

#[test]
fn tls_trusts_the_test_ca_for_the_in_cluster_names_and_the_loopback_ip() {
    let api = ApiServer::start();
    assert!(api.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    let mut connection = api.client().connect().unwrap();
    assert_eq!(connection.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let response = connection.send("GET", "/healthz", &[], b"").unwrap();
    assert_eq!(response.status, 401);

    for name in ["kubernetes.default.svc.cluster.local", "127.0.0.1"] {
        api.client().with_server_name(name).connect().unwrap();
    }
    let wrong_name = api.client().with_server_name("example.com").connect();
    assert!(wrong_name.is_err(), "a certificate for example.com?");
    let stranger =
        kfauth_testkit::apiserver::ApiClient::new(api.addr(), TestCa::generate().client_config());
    let error = stranger
        .connect()
        .err()
        .expect("another CA must not be trusted");
    assert!(error.contains("certificate"), "{error}");
    // The handshake that failed sent no request; the ones that did, SNI.
    assert_eq!(api.server_names_seen(), vec![API_SERVER_SNI.to_string()]);
}

#[test]
fn curl_reaches_it_with_the_ca_file() {
    let api = ApiServer::start_with_fixtures();
    let dir = std::env::temp_dir().join(format!("kfauth-apiserver-{}", api.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, api.ca_pem()).unwrap();
    let url = format!("https://{API_SERVER_SNI}:{}{SAR_PATH}", api.port());
    let resolve = format!("{API_SERVER_SNI}:{}:127.0.0.1", api.port());
    let authorization = format!("Authorization: Bearer {}", api.bearer_token());
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--cacert"])
        .arg(&ca)
        .args(["--resolve", &resolve, "-H", &authorization])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ])
        .args(["--write-out", "\n%{http_code}", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(create_run(USER).to_string().as_bytes())?;
            }
            child.wait_with_output()
        });
    let _ = std::fs::remove_dir_all(&dir);
    let Ok(output) = output else {
        report_skipped("curl_reaches_it_with_the_ca_file", "curl is not installed");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or_default();
    assert_eq!(
        code,
        "201",
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let review: Value = serde_json::from_str(body).unwrap();
    assert_eq!(review["status"]["allowed"], true);
}

#[test]
fn callers_without_the_bearer_token_get_a_401_status() {
    let api = ApiServer::start_with_fixtures();
    let body = create_run(USER).to_string();
    let client = api.client();
    let attempts: [&[(&str, &str)]; 3] = [
        &[],
        &[("authorization", "Bearer not-the-token")],
        &[("authorization", "Basic a2ZhdXRoOnNlY3JldA==")],
    ];
    for headers in attempts {
        let response = client
            .send("POST", SAR_PATH, headers, body.as_bytes())
            .unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(response.header("content-type"), Some("application/json"));
        let status = response.json();
        assert_eq!(
            (
                &status["kind"],
                &status["code"],
                &status["reason"],
                &status["status"]
            ),
            (
                &json!("Status"),
                &json!(401),
                &json!("Unauthorized"),
                &json!("Failure")
            )
        );
    }
    assert_eq!((api.unauthorized_count(), api.sar_count()), (3, 0));

    api.set_bearer_token("rotated");
    let lower = client
        .send(
            "POST",
            SAR_PATH,
            &[
                ("authorization", "bearer rotated"),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    assert_eq!(lower.status, 201, "{}", lower.body);
    assert_eq!(api.post_json(SAR_PATH, &create_run(USER)).status, 201);
}

#[test]
fn subject_access_reviews_are_answered_from_rbac_and_recorded() {
    let api = ApiServer::start_with_fixtures();
    let allowed = api.post_json(SAR_PATH, &create_run(USER));
    assert_eq!(allowed.status, 201);
    assert_eq!(allowed.header("content-type"), Some("application/json"));
    let review = allowed.json();
    assert_eq!(review["kind"], "SubjectAccessReview");
    assert_eq!(review["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(review["spec"], create_run(USER)["spec"]);
    assert_eq!(review["status"]["allowed"], true);
    assert_eq!(
        review["status"]["reason"],
        r#"RBAC: allowed by RoleBinding "owner-edit/kubeflow-user-example-com" of ClusterRole "kubeflow-edit" to User "user@example.com""#
    );

    let viewer = subject_access_review::request_body(
        &AccessRequest::user("carol@example.com")
            .groups(&[VIEWER_GROUP])
            .can("create", "pipelines.kubeflow.org", "runs")
            .in_namespace(USER_NAMESPACE),
    );
    let denied = api.post_json(SAR_PATH, &viewer);
    assert_eq!(denied.status, 201);
    assert_eq!(denied.json()["status"], json!({"allowed": false}));

    assert_eq!(api.sar_count(), 2);
    assert_eq!(api.token_review_count(), 0);
    assert_eq!(api.last_sar_request(), Some(viewer));
    for body in api.sar_requests() {
        validate_sar_request(&body).unwrap();
    }
    // Policy can change under a running server.
    api.apply_yaml(&role_binding(
        "kubeflow-user-example-com",
        "carol-edit",
        "kubeflow-edit",
        &[Subject::User("carol@example.com")],
    ))
    .unwrap();
    let now_allowed = api.post_json(SAR_PATH, &api.last_sar_request().unwrap());
    assert_eq!(now_allowed.json()["status"]["allowed"], true);
}

#[test]
fn token_reviews_answer_registered_tokens_until_revoked() {
    let api = ApiServer::start();
    api.register_service_account_token("sa-token", "kubeflow", "pipeline-runner", &["kfauth"]);
    api.register_token("user-token", "alice@example.com", &["team"], &[]);
    let reviewed = api.post_json(
        TOKEN_REVIEW_PATH,
        &token_review::request_body("sa-token", &["kfauth"]),
    );
    assert_eq!(reviewed.status, 201);
    let status = &reviewed.json()["status"];
    assert_eq!(status["authenticated"], true);
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:kubeflow:pipeline-runner"
    );
    assert_eq!(status["audiences"], json!(["kfauth"]));
    assert!(status["user"]["uid"]
        .as_str()
        .is_some_and(|uid| !uid.is_empty()));

    let api_audience = api.post_json(
        TOKEN_REVIEW_PATH,
        &token_review::request_body("user-token", &[]),
    );
    assert_eq!(
        api_audience.json()["status"]["user"]["groups"],
        json!(["team"])
    );

    api.revoke_token("sa-token");
    let revoked = api.post_json(
        TOKEN_REVIEW_PATH,
        &token_review::request_body("sa-token", &["kfauth"]),
    );
    assert_eq!(revoked.status, 201);
    let status = &revoked.json()["status"];
    assert_eq!(
        status.get("authenticated"),
        None,
        "omitted like the real server"
    );
    assert!(status["error"].as_str().is_some_and(|e| !e.is_empty()));

    assert_eq!(api.token_review_count(), 3);
    for body in api.token_review_requests() {
        validate_token_review_request(&body).unwrap();
    }
}

#[test]
fn bad_requests_get_the_real_server_s_errors() {
    let api = ApiServer::start();
    let auth = format!("Bearer {}", api.bearer_token());
    let send = |method: &str, path: &str, content_type: &str, body: &str| {
        api.client()
            .send(
                method,
                path,
                &[("authorization", &auth), ("content-type", content_type)],
                body.as_bytes(),
            )
            .unwrap()
    };
    let json_type = "application/json";
    let cases = [
        (
            "POST",
            "/api/v1/namespaces",
            json_type,
            "{}",
            404,
            "NotFound",
        ),
        ("GET", SAR_PATH, json_type, "", 405, "MethodNotAllowed"),
        (
            "POST",
            SAR_PATH,
            "text/plain",
            "{}",
            415,
            "UnsupportedMediaType",
        ),
        ("POST", SAR_PATH, json_type, "{not json", 400, "BadRequest"),
        (
            "POST",
            SAR_PATH,
            json_type,
            r#"{"spec":{"user":"u"}}"#,
            422,
            "Invalid",
        ),
        (
            "POST",
            SAR_PATH,
            json_type,
            r#"{"kind":"Pod","spec":{}}"#,
            400,
            "BadRequest",
        ),
        (
            "POST",
            TOKEN_REVIEW_PATH,
            json_type,
            r#"{"spec":{}}"#,
            400,
            "BadRequest",
        ),
    ];
    for (method, path, content_type, body, code, reason) in cases {
        let response = send(method, path, content_type, body);
        assert_eq!(
            response.status, code,
            "{method} {path} {body}: {}",
            response.body
        );
        let status = response.json();
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str()),
            (Some("Status"), Some(reason))
        );
        assert_eq!(status["code"], code);
    }
    let unknown = send(
        "POST",
        SAR_PATH,
        "application/json; charset=utf-8",
        r#"{"spec":{"user":"u","nonResourceAttributes":{"path":"/","verb":"get"},"usr":"x"}}"#,
    );
    assert_eq!(unknown.status, 201);
    assert_eq!(
        unknown.header("warning"),
        Some(r#"299 - "unknown field \"spec.usr\"""#)
    );
}

#[test]
fn one_connection_carries_many_reviews() {
    let api = ApiServer::start_with_fixtures();
    let auth = format!("Bearer {}", api.bearer_token());
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let mut connection = api.client().connect().unwrap();
    for _ in 0..5 {
        let response = connection
            .send(
                "POST",
                SAR_PATH,
                &headers,
                create_run(USER).to_string().as_bytes(),
            )
            .unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(response.header("connection"), None);
    }
    assert_eq!((api.sar_count(), api.connections_accepted()), (5, 1));
    let mut closing = headers.to_vec();
    closing.push(("connection", "close"));
    let last = connection
        .send(
            "POST",
            SAR_PATH,
            &closing,
            create_run(USER).to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(last.header("connection"), Some("close"));
    assert!(connection.send("POST", SAR_PATH, &headers, b"{}").is_err());
}

#[test]
fn modes_make_it_slow_failing_garbage_or_hanging_up() {
    let api = ApiServer::start_with_fixtures();
    let token = token_review::request_body("t", &[]);

    api.set_mode(ApiMode::Fail);
    let failed = api.post_json(SAR_PATH, &create_run(USER));
    assert_eq!(
        (failed.status, failed.json()["reason"].as_str()),
        (500, Some("InternalError"))
    );

    api.set_mode(ApiMode::Garbage);
    let garbage = api.post_json(SAR_PATH, &create_run(USER));
    assert_eq!(garbage.status, 200);
    assert!(serde_json::from_str::<Value>(&garbage.body).is_err());

    api.set_mode(ApiMode::Hangup);
    let auth = format!("Bearer {}", api.bearer_token());
    let hung = api.client().send(
        "POST",
        SAR_PATH,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        create_run(USER).to_string().as_bytes(),
    );
    assert!(hung.is_err(), "{hung:?}");

    api.set_mode(ApiMode::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    assert_eq!(api.post_json(SAR_PATH, &create_run(USER)).status, 201);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // One endpoint at a time.
    api.set_mode(ApiMode::Answer);
    api.set_mode_for(Review::Token, ApiMode::Fail);
    assert_eq!(api.post_json(SAR_PATH, &create_run(USER)).status, 201);
    assert_eq!(api.post_json(TOKEN_REVIEW_PATH, &token).status, 500);
    assert_eq!(api.mode(Review::SubjectAccess), ApiMode::Answer);

    // Every review that arrived is counted, whatever it was answered.
    assert_eq!((api.sar_count(), api.token_review_count()), (5, 1));
    api.reset_counts();
    assert_eq!((api.sar_count(), api.sar_requests().len()), (0, 0));
}

#[test]
fn down_refuses_and_drops_connections_then_comes_back_on_the_same_port() {
    let mut api = ApiServer::start_with_fixtures();
    let port = api.port();
    let auth = format!("Bearer {}", api.bearer_token());
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = create_run(USER).to_string();
    let mut kept = api.client().connect().unwrap();
    assert_eq!(
        kept.send("POST", SAR_PATH, &headers, body.as_bytes())
            .unwrap()
            .status,
        201
    );

    api.stop();
    assert!(!api.is_up());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting"
    );
    assert!(
        kept.send("POST", SAR_PATH, &headers, body.as_bytes())
            .is_err(),
        "kept connection survived"
    );
    assert_eq!(api.open_connections(), 0);

    api.restart();
    assert_eq!(api.port(), port);
    assert_eq!(
        api.post_json(SAR_PATH, &create_run(USER)).json()["status"]["allowed"],
        true
    );
    assert_eq!(api.sar_count(), 2);
}

#[test]
fn concurrent_callers_are_served_in_parallel() {
    let api = ApiServer::start_with_fixtures();
    api.set_mode(ApiMode::Slow(Duration::from_secs(2)));
    let done = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                assert_eq!(api.post_json(SAR_PATH, &create_run(USER)).status, 201);
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        // Reviews are counted on arrival: all four arrive while the first
        // is still being answered only if connections are served in parallel.
        while api.sar_count() < 4 {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "one slow answer held up the others"
        );
    });
    assert_eq!(done.into_inner(), 4);
}

/// A real Envoy, with the cluster e2e tests use, in front of the stand-in:
/// SNI, the inline CA and kept-alive upstream connections all work.
#[test]
fn envoy_reaches_it_through_the_api_server_cluster() {
    let envoy_bin = kfauth_testkit::envoy::envoy_bin();
    if !envoy_bin.exists() {
        let why = format!("no Envoy at {}", envoy_bin.display());
        report_skipped("envoy_reaches_it_through_the_api_server_cluster", &why);
        return;
    }
    let api = ApiServer::start_with_fixtures();
    let cluster = api.envoy_cluster();
    assert_eq!(cluster.name, API_SERVER_CLUSTER);
    let listener_port = free_port();
    let yaml = format!(
        r#"admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: 0 }}
static_resources:
  listeners:
  - name: to-apiserver
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: to_apiserver
          route_config:
            virtual_hosts:
            - name: apiserver
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: "{API_SERVER_CLUSTER}" }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{cluster}"#,
        cluster = kfauth_testkit::bootstrap::cluster_yaml(&cluster),
    );
    assert!(yaml.contains(r#"sni: "kubernetes.default.svc""#));
    assert!(yaml.contains("trusted_ca: { inline_string: \"-----BEGIN CERTIFICATE-----\\n"));
    let dir = std::env::temp_dir().join(format!("kfauth-apiserver-envoy-{}", api.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("envoy.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let args = kfauth_testkit::envoy::envoy_args(&config, &dir.join("envoy.log"), 1);
    let mut child = Command::new(&envoy_bin)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(&mut child);

    let url = format!("http://127.0.0.1:{listener_port}{SAR_PATH}");
    let auth = format!("Bearer {}", api.bearer_token());
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let body = create_run(USER).to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        match client::send("POST", &url, &headers, Some(body.as_bytes())) {
            Ok(response) => break response,
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(dir.join("envoy.log")).unwrap_or_default();
                panic!("Envoy never answered: {e}\n{log}");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.json()["status"]["allowed"], true);
    for _ in 0..3 {
        let again = client::send("POST", &url, &headers, Some(body.as_bytes())).unwrap();
        assert_eq!(again.status, 201);
    }
    assert_eq!(api.sar_count(), 4);
    assert_eq!(
        api.connections_accepted(),
        1,
        "Envoy keeps its upstream connection"
    );
    assert_eq!(api.server_names_seen(), vec![API_SERVER_SNI.to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
}

struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
