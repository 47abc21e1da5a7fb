//! README "Machine-to-machine recipes", as written: the `pluginConfig` blocks
//! of GitHub Actions, GitLab CI and EKS (merged as a user adds them beside
//! each other), the RBAC block, in one Envoy with two workers, in front of
//! the API server stand-in answering from that RBAC. Each issuer is served
//! on 127.0.0.1 under its real name (the Envoy cluster Istio would name for
//! it points at the test's server), with the discovery document, key path
//! and token claims its provider documents:
//! - GitHub: <https://docs.github.com/en/actions/reference/security/oidc>
//!   (the example token's claims; `claims_supported` of
//!   `https://token.actions.githubusercontent.com/.well-known/openid-configuration`);
//! - GitLab: <https://docs.gitlab.com/ci/secrets/id_token_authentication/>
//!   (the ID token payload; gitlab.com's discovery names
//!   `https://gitlab.com/oauth/discovery/keys`);
//! - EKS: <https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html>
//!   and Kubernetes' service account issuer discovery
//!   (<https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#service-account-issuer-discovery>):
//!   the document kube-apiserver serves, keys at `ISSUER/keys`, the claims of
//!   a projected service-account token.
//!
//! `recipes_let_each_ci_run_pipelines_in_its_namespace_only`:
//! - keys come by discovery only: each issuer's document and then the
//!   `jwks_uri` it names are fetched;
//! - the main branch of `octo-org/octo-repo` lists experiments and runs in
//!   `ci-pipelines` (kfauth's SubjectAccessReview: user
//!   `github:repo:octo-org/octo-repo:ref:refs/heads/main`, `list`
//!   `pipelines.kubeflow.org` `experiments`), is refused (403) in another
//!   namespace, and its run creation reaches KFP with that user and without
//!   its token; another branch and another repository of the same owner
//!   get 403 in `ci-pipelines`; a token with GitHub's default audience (the
//!   owner's URL) gets 401 `audience_mismatch`; a token signed by a key
//!   GitHub does not publish gets 401;
//! - GitLab: `my-group/my-project` on `main` may, the same project on
//!   another branch may not;
//! - EKS: the service account `ml-ci/pipeline-runner` may, its token reaching
//!   KFP (`forwardOriginalToken`); another service account may not; the IRSA
//!   token for AWS (audience `sts.amazonaws.com`) gets 401;
//! - a token of one issuer presented as another's (GitLab claims signed by
//!   GitHub's key) gets 401.
//!
//! `the_readme_script_runs_a_pipeline_with_the_kfp_sdk` (skipped by name
//! when no Python can import `kfp`; `make kfp` installs it into `.venv`,
//! `$KFP_PYTHON` names another Python): README's `run_pipeline.py`, pointed
//! at this Envoy, runs with the real KFP SDK and a compiled pipeline:
//! with the main branch's token it completes (the SDK's namespaced list of
//! experiments passes kfauth's SubjectAccessReview for the workflow's user;
//! that list, the experiment's and the run's creation, at least three
//! requests, pass kfauth to the echo upstream standing in for KFP); with another repository's
//! token the SDK's first call fails with 403 `forbidden`.
//!
//! `recipe_blocks_agree_with_each_other`: the workflow asks GitHub for the
//! audience the rule accepts and may (`id-token: write`); `.gitlab-ci.yml`
//! asks for the GitLab rule's audience; the pod's projected token has the
//! EKS rule's audience at the path its command reads, under the service
//! account the RoleBinding names; `run_pipeline.py` passes the token with
//! `existing_token` and runs in the namespace of the RoleBinding.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod readme_support;

use std::path::PathBuf;
use std::process::{Command, Output};

use kfauth_testkit::apiserver::conformance::report_skipped;
use kfauth_testkit::apiserver::{ApiServer, Rbac};
use kfauth_testkit::bootstrap::istio_cluster_name;
use kfauth_testkit::idp::now;
use kfauth_testkit::kustomize::yaml_documents;
use kfauth_testkit::{expect, Alg, Cluster, Gateway, HttpResponse, Idp, JwksMode, JwksServer};
use readme_support::{readme_block, readme_fenced};
use serde_json::{json, Value};

const GITHUB: &str = "https://token.actions.githubusercontent.com";
const GITLAB: &str = "https://gitlab.com";
const EKS: &str = "https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
const DISCOVERY: &str = "/.well-known/openid-configuration";
/// Where the README's recipes run pipelines, and the audience CI asks for.
const NAMESPACE: &str = "ci-pipelines";
const AUDIENCE: &str = "https://kubeflow.example.com";
const KFP_AUDIENCE: &str = "pipelines.kubeflow.org";
const TOKEN_ENV: &str = "KFAUTH_APISERVER_TOKEN";
const EXPERIMENTS: &str = "/pipeline/apis/v2beta1/experiments";
const RUNS: &str = "/pipeline/apis/v2beta1/runs";

fn yaml(text: &str, origin: &str) -> Vec<Value> {
    yaml_documents(text, origin).unwrap_or_else(|e| panic!("{e}"))
}

fn one_yaml(text: &str, origin: &str) -> Value {
    let [document] = yaml(text, origin).try_into().unwrap();
    document
}

/// The README's three `pluginConfig` blocks, as a user merges them: the
/// rules side by side, the GitHub block's `authorization`.
fn plugin_config() -> Value {
    let github = one_yaml(&readme_block("# GitHub Actions: pluginConfig"), "GitHub");
    let gitlab = one_yaml(&readme_block("# GitLab CI: pluginConfig"), "GitLab");
    let eks = one_yaml(&readme_block("# EKS: pluginConfig"), "EKS");
    for (block, issuer) in [(&github, GITHUB), (&gitlab, GITLAB), (&eks, EKS)] {
        let [rule] = block["jwtRules"].as_array().unwrap().as_slice() else {
            panic!("one rule per recipe: {block}");
        };
        assert_eq!(rule["issuer"], issuer);
        assert!(
            rule.get("jwks").is_none() && rule.get("jwksUri").is_none(),
            "keys by discovery only: {rule}"
        );
    }
    assert!(gitlab.get("authorization").is_none() && eks.get("authorization").is_none());
    let rules: Vec<Value> = [&github, &gitlab, &eks]
        .iter()
        .flat_map(|block| block["jwtRules"].as_array().unwrap().clone())
        .collect();
    json!({"jwtRules": rules, "authorization": github["authorization"]})
}

/// An issuer's server: its discovery document at `ISSUER/.well-known/...`
/// and its keys at the path the document names.
fn provider(issuer: &str, document: Value, idp: &Idp) -> JwksServer {
    let jwks_uri = document["jwks_uri"].as_str().unwrap();
    let keys_path = jwks_uri.strip_prefix("https://").unwrap();
    let keys_path = &keys_path[keys_path.find('/').unwrap()..];
    let server = JwksServer::start_with("127.0.0.1:0", keys_path, JwksMode::Serve(idp.jwks_json()));
    server.route(
        &discovery_path(issuer),
        JwksMode::Serve(document.to_string()),
    );
    server
}

/// The path of an issuer's discovery document: its own path (EKS's
/// `/id/ID`) and `/.well-known/openid-configuration`.
fn discovery_path(issuer: &str) -> String {
    let rest = issuer.strip_prefix("https://").unwrap();
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    format!("{path}{DISCOVERY}")
}

/// The cluster Istio names for an `https://` issuer's host, to `server`.
fn cluster_for(issuer: &str, server: &JwksServer) -> Cluster {
    let host = issuer
        .strip_prefix("https://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    Cluster::loopback(&istio_cluster_name(host, 443), server.port())
}

/// GitHub's discovery document (its published fields).
fn github_document() -> Value {
    json!({
        "issuer": GITHUB,
        "jwks_uri": format!("{GITHUB}/.well-known/jwks"),
        "subject_types_supported": ["public", "pairwise"],
        "response_types_supported": ["id_token"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
            "repository_id", "repository_owner", "repository_owner_id", "run_id", "run_number",
            "run_attempt", "actor", "actor_id", "workflow", "workflow_ref", "workflow_sha",
            "head_ref", "base_ref", "event_name", "ref_type", "environment",
            "job_workflow_ref", "job_workflow_sha", "repository_visibility", "runner_environment",
        ],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
    })
}

/// A GitHub Actions token as GitHub's reference shows one: `sub` is
/// `repo:OWNER/REPO:ref:REF` for a job without an environment.
fn github_token(idp: &Idp, repository: &str, git_ref: &str, audience: &str) -> String {
    let owner = repository.split('/').next().unwrap();
    let t = now();
    idp.sign(
        Alg::RS256,
        &json!({
            "jti": "example-id",
            "sub": format!("repo:{repository}:ref:{git_ref}"),
            "aud": audience,
            "ref": git_ref,
            "sha": "example-sha",
            "repository": repository,
            "repository_owner": owner,
            "actor_id": "12",
            "repository_visibility": "private",
            "repository_id": "74",
            "repository_owner_id": "65",
            "run_id": "example-run-id",
            "run_number": "10",
            "run_attempt": "2",
            "runner_environment": "github-hosted",
            "actor": "octocat",
            "workflow": "run-pipeline",
            "head_ref": "",
            "base_ref": "",
            "event_name": "push",
            "ref_type": "branch",
            "job_workflow_ref": format!("{repository}/.github/workflows/run-pipeline.yml@{git_ref}"),
            "iss": GITHUB,
            "nbf": t - 5,
            "exp": t + 300,
            "iat": t,
        }),
    )
}

/// gitlab.com's discovery document (the fields that matter here, as published).
fn gitlab_document() -> Value {
    json!({
        "issuer": GITLAB,
        "authorization_endpoint": format!("{GITLAB}/oauth/authorize"),
        "token_endpoint": format!("{GITLAB}/oauth/token"),
        "revocation_endpoint": format!("{GITLAB}/oauth/revoke"),
        "introspection_endpoint": format!("{GITLAB}/oauth/introspect"),
        "userinfo_endpoint": format!("{GITLAB}/oauth/userinfo"),
        "jwks_uri": format!("{GITLAB}/oauth/discovery/keys"),
        "scopes_supported": ["api", "read_api", "read_user", "openid", "profile", "email"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "sub_legacy", "name", "nickname", "email", "groups"],
    })
}

/// A GitLab CI ID token as GitLab's documentation shows its payload.
fn gitlab_token(idp: &Idp, project: &str, branch: &str) -> String {
    let group = project.split('/').next().unwrap();
    let t = now();
    idp.sign(
        Alg::RS256,
        &json!({
            "namespace_id": "72",
            "namespace_path": group,
            "project_id": "20",
            "project_path": project,
            "user_id": "1",
            "user_login": "sample-user",
            "user_email": "sample-user@example.com",
            "user_access_level": "developer",
            "pipeline_id": "574",
            "pipeline_source": "push",
            "job_id": "302",
            "ref": branch,
            "ref_type": "branch",
            "ref_path": format!("refs/heads/{branch}"),
            "ref_protected": "true",
            "runner_id": 1,
            "runner_environment": "gitlab-hosted",
            "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "project_visibility": "private",
            "ci_config_ref_uri": format!("gitlab.com/{project}//.gitlab-ci.yml@refs/heads/{branch}"),
            "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
            "iss": GITLAB,
            "iat": t,
            "nbf": t - 5,
            "exp": t + 3600,
            "sub": format!("project_path:{project}:ref_type:branch:ref:{branch}"),
            "aud": AUDIENCE,
        }),
    )
}

/// The discovery document of a Kubernetes service-account issuer, as
/// kube-apiserver (and EKS's public endpoint) serve it.
fn eks_document() -> Value {
    json!({
        "issuer": EKS,
        "jwks_uri": format!("{EKS}/keys"),
        "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

/// A projected service-account token of the EKS cluster.
fn eks_token(idp: &Idp, namespace: &str, account: &str, audience: &str) -> String {
    let t = now();
    idp.sign(
        Alg::RS256,
        &json!({
            "aud": [audience],
            "exp": t + 3600,
            "iat": t,
            "iss": EKS,
            "jti": "9d7c1b4e-3f0a-4e55-8f7e-2b8c4c2d1a11",
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "ip-192-168-1-7.us-west-2.compute.internal", "uid": "7f1d8a0e-0d3b-4c7a-9b9e-1a2b3c4d5e6f"},
                "pod": {"name": "nightly-training", "uid": "2c0a1e8e-5b7d-4e3f-9a1b-7c6d5e4f3a2b"},
                "serviceaccount": {"name": account, "uid": "c1e2d3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"},
                "warnafter": t + 3300,
            },
            "nbf": t,
            "sub": format!("system:serviceaccount:{namespace}:{account}"),
        }),
    )
}

/// The README's recipes in Envoy: GitHub's issuer signs with the shared test
/// keys, GitLab's with the second shared keys, EKS's with `eks_keys`.
struct Setup {
    gateway: Gateway,
    api: ApiServer,
    github: JwksServer,
    gitlab: JwksServer,
    eks: JwksServer,
    eks_keys: Idp,
}

impl Setup {
    fn start() -> Setup {
        let rbac = Rbac::from_yaml(&readme_block(
            "# RBAC: the CI identities may run pipelines in ci-pipelines",
        ))
        .unwrap();
        let api = ApiServer::start_with_rbac(rbac);
        let eks_keys = Idp::generate("eks-rsa", "eks-ec");
        let github = provider(GITHUB, github_document(), Idp::shared());
        let gitlab = provider(GITLAB, gitlab_document(), Idp::shared_second());
        let eks = provider(EKS, eks_document(), &eks_keys);
        let clusters = [
            cluster_for(GITHUB, &github),
            cluster_for(GITLAB, &gitlab),
            cluster_for(EKS, &eks),
        ];
        let gateway = Gateway::start_with(plugin_config(), |mut settings| {
            for cluster in clusters {
                settings = settings.with_cluster(cluster);
            }
            settings
                .with_cluster(api.envoy_cluster())
                .with_vm_env(TOKEN_ENV, &api.bearer_token())
                .with_concurrency(2)
        });
        Setup {
            gateway,
            api,
            github,
            gitlab,
            eks,
            eks_keys,
        }
    }

    fn send(&self, method: &str, path: &str, token: &str) -> HttpResponse {
        let bearer = format!("Bearer {token}");
        let body = (method == "POST").then_some(&b"{\"display_name\":\"ci\"}"[..]);
        self.gateway
            .request(method, path, &[("authorization", bearer.as_str())], body)
    }

    /// `GET` a KFP list in `namespace`.
    fn list(&self, what: &str, namespace: &str, token: &str) -> HttpResponse {
        self.send("GET", &format!("{what}?namespace={namespace}"), token)
    }
}

/// The request reached KFP as `user`; returns the `authorization` KFP saw.
fn reached_kfp_as(response: &HttpResponse, user: &str) -> Option<String> {
    assert_eq!(response.status, 200, "{}", response.body);
    let echoed = expect::allowed(response);
    assert_eq!(echoed.header_values("kubeflow-userid"), vec![user]);
    echoed.header("authorization").map(str::to_string)
}

fn forbidden(response: &HttpResponse) {
    assert_eq!(response.status, 403, "{}", response.body);
    assert_eq!(response.json()["reason"], "forbidden", "{}", response.body);
}

#[test]
fn recipes_let_each_ci_run_pipelines_in_its_namespace_only() {
    let setup = Setup::start();
    let github_keys = Idp::shared();
    let gitlab_keys = Idp::shared_second();
    let eks_keys = &setup.eks_keys;

    // GitHub Actions.
    let workflow_token = |repository: &str, git_ref: &str, audience: &str| {
        github_token(github_keys, repository, git_ref, audience)
    };
    let main = workflow_token("octo-org/octo-repo", "refs/heads/main", AUDIENCE);
    let user = "github:repo:octo-org/octo-repo:ref:refs/heads/main";
    for what in [EXPERIMENTS, RUNS] {
        let forwarded = reached_kfp_as(&setup.list(what, NAMESPACE, &main), user);
        assert_eq!(forwarded, None, "the GitHub token stays at the gateway");
    }
    let review = setup
        .api
        .sar_requests()
        .into_iter()
        .find(|body| body["spec"]["user"] == user)
        .expect("kfauth asked the API server about the workflow's user");
    assert_eq!(
        review["spec"]["resourceAttributes"],
        json!({"namespace": NAMESPACE, "group": "pipelines.kubeflow.org", "resource": "experiments", "verb": "list"})
    );
    forbidden(&setup.list(RUNS, "team-a", &main));
    // Creating a run names its namespace in the body: KFP decides, as `user`.
    reached_kfp_as(&setup.send("POST", RUNS, &main), user);
    let feature = workflow_token("octo-org/octo-repo", "refs/heads/feature", AUDIENCE);
    forbidden(&setup.list(RUNS, NAMESPACE, &feature));
    let other_repo = workflow_token("octo-org/other-repo", "refs/heads/main", AUDIENCE);
    forbidden(&setup.list(RUNS, NAMESPACE, &other_repo));
    let default_audience = workflow_token(
        "octo-org/octo-repo",
        "refs/heads/main",
        "https://github.com/octo-org",
    );
    expect::rejected(
        &setup.list(RUNS, NAMESPACE, &default_audience),
        "audience_mismatch",
    );
    let not_githubs_key = github_token(eks_keys, "octo-org/octo-repo", "refs/heads/main", AUDIENCE);
    let refused = setup.list(RUNS, NAMESPACE, &not_githubs_key);
    assert_eq!(refused.status, 401, "{}", refused.body);

    // GitLab CI.
    let main = gitlab_token(gitlab_keys, "my-group/my-project", "main");
    let user = "gitlab:project_path:my-group/my-project:ref_type:branch:ref:main";
    assert_eq!(
        reached_kfp_as(&setup.list(RUNS, NAMESPACE, &main), user),
        None
    );
    forbidden(&setup.list(
        RUNS,
        NAMESPACE,
        &gitlab_token(gitlab_keys, "my-group/my-project", "dev"),
    ));
    let posing = gitlab_token(github_keys, "my-group/my-project", "main");
    let refused = setup.list(RUNS, NAMESPACE, &posing);
    assert_eq!(
        refused.status, 401,
        "GitLab claims signed by GitHub's key: {}",
        refused.body
    );

    // EKS service accounts.
    let runner = eks_token(eks_keys, "ml-ci", "pipeline-runner", KFP_AUDIENCE);
    let forwarded = reached_kfp_as(
        &setup.list(EXPERIMENTS, NAMESPACE, &runner),
        "system:serviceaccount:ml-ci:pipeline-runner",
    );
    assert_eq!(
        forwarded,
        Some(format!("Bearer {runner}")),
        "KFP gets the token"
    );
    forbidden(&setup.list(
        EXPERIMENTS,
        NAMESPACE,
        &eks_token(eks_keys, "ml-ci", "default", KFP_AUDIENCE),
    ));
    let irsa = eks_token(eks_keys, "ml-ci", "pipeline-runner", "sts.amazonaws.com");
    expect::rejected(
        &setup.list(EXPERIMENTS, NAMESPACE, &irsa),
        "audience_mismatch",
    );

    // Keys by discovery only: each document, then the keys it names.
    for (server, issuer, document) in [
        (&setup.github, GITHUB, github_document()),
        (&setup.gitlab, GITLAB, gitlab_document()),
        (&setup.eks, EKS, eks_document()),
    ] {
        assert!(server.hits_at(&discovery_path(issuer)) >= 1, "{issuer}");
        let keys = document["jwks_uri"].as_str().unwrap();
        assert!(server.hits() >= 1, "{issuer}: {keys} never fetched");
    }
    setup.gateway.assert_no_vm_trap();
}

#[test]
fn recipe_blocks_agree_with_each_other() {
    let config = plugin_config();
    let rules = config["jwtRules"].as_array().unwrap();
    let audience_of = |issuer: &str| {
        let rule = rules.iter().find(|r| r["issuer"] == issuer).unwrap();
        let [audience] = rule["audiences"].as_array().unwrap().as_slice() else {
            panic!("one audience: {rule}");
        };
        audience.as_str().unwrap().to_string()
    };
    let [_role, binding] = yaml(
        &readme_block("# RBAC: the CI identities may run pipelines in ci-pipelines"),
        "RBAC",
    )
    .try_into()
    .unwrap();
    assert_eq!(binding["metadata"]["namespace"], NAMESPACE);

    // GitHub: the workflow may ask for a token, for the rule's audience.
    let workflow = one_yaml(
        &readme_block("# .github/workflows/run-pipeline.yml"),
        "workflow",
    );
    assert_eq!(workflow["permissions"]["id-token"], "write");
    let steps = workflow["jobs"]["run"]["steps"].as_array().unwrap();
    let script = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .find(|run| run.contains("ACTIONS_ID_TOKEN_REQUEST_URL"))
        .expect("a step asks GitHub for the token");
    assert!(
        script.contains(&format!("&audience={}\"", audience_of(GITHUB))),
        "{script}"
    );
    assert!(script.contains("export KUBEFLOW_TOKEN=") && script.contains("python run_pipeline.py"));

    // The script both CI recipes run.
    let python = readme_fenced("python", "# run_pipeline.py");
    assert!(
        python.contains("existing_token=os.environ[\"KUBEFLOW_TOKEN\"]"),
        "{python}"
    );
    assert!(
        python.contains(&format!("namespace=\"{NAMESPACE}\"")),
        "{python}"
    );

    // GitLab: the job's ID token has the rule's audience, in KUBEFLOW_TOKEN.
    let gitlab_ci = one_yaml(&readme_block("# .gitlab-ci.yml"), ".gitlab-ci.yml");
    let job = &gitlab_ci["run-pipeline"];
    assert_eq!(
        job["id_tokens"]["KUBEFLOW_TOKEN"]["aud"],
        audience_of(GITLAB)
    );
    assert!(job["script"]
        .as_array()
        .unwrap()
        .contains(&json!("python run_pipeline.py")));

    // EKS: the pod's projected token has the rule's audience, at the path its
    // command reads, and its service account is the one the binding names.
    let pod = one_yaml(&readme_block("# EKS: the calling pod's token"), "pod");
    let projected = &pod["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(projected["audience"], audience_of(EKS));
    let container = &pod["spec"]["containers"][0];
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    let path = format!("{mount}/{}", projected["path"].as_str().unwrap());
    assert_eq!(path, "/var/run/secrets/kubeflow/pipelines/token");
    assert!(container["command"][2].as_str().unwrap().contains(&path));
    let account = json!({
        "kind": "ServiceAccount",
        "name": pod["spec"]["serviceAccountName"],
        "namespace": pod["metadata"]["namespace"],
    });
    assert!(
        binding["subjects"].as_array().unwrap().contains(&account),
        "{account} not in {}",
        binding["subjects"]
    );
}

/// A Python that imports the KFP SDK: `$KFP_PYTHON`, else `.venv/bin/python`.
fn kfp_python() -> Option<PathBuf> {
    let python = std::env::var_os("KFP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| kfauth_testkit::bootstrap::repo_root().join(".venv/bin/python"));
    Command::new(&python)
        .args(["-c", "import kfp"])
        .output()
        .is_ok_and(|output| output.status.success())
        .then_some(python)
}

/// A one-step pipeline, compiled by the SDK as a user's CI would.
const COMPILE_PIPELINE: &str = r#"
from kfp import compiler, dsl

@dsl.component(base_image="python:3.12")
def hello() -> str:
    return "hello"

@dsl.pipeline(name="ci")
def ci():
    hello()

compiler.Compiler().compile(ci, "pipeline.yaml")
"#;

fn python(python: &PathBuf, dir: &PathBuf, args: &[&str], token: &str) -> Output {
    Command::new(python)
        .args(args)
        .env("KUBEFLOW_TOKEN", token)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", python.display()))
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_readme_script_runs_a_pipeline_with_the_kfp_sdk() {
    let test = "the_readme_script_runs_a_pipeline_with_the_kfp_sdk";
    let Some(interpreter) = kfp_python() else {
        report_skipped(
            test,
            "no Python imports kfp (make kfp installs it into .venv)",
        );
        return;
    };
    let setup = Setup::start();
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kfp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The SDK reads a component's source from its file.
    std::fs::write(dir.join("compile_pipeline.py"), COMPILE_PIPELINE).unwrap();
    let compiled = python(&interpreter, &dir, &["compile_pipeline.py"], "");
    assert!(compiled.status.success(), "{}", printed(&compiled));
    let script = readme_fenced("python", "# run_pipeline.py")
        .replace("https://kubeflow.example.com", &setup.gateway.url(""));
    std::fs::write(dir.join("run_pipeline.py"), script).unwrap();

    let main = github_token(
        Idp::shared(),
        "octo-org/octo-repo",
        "refs/heads/main",
        AUDIENCE,
    );
    let ran = python(&interpreter, &dir, &["run_pipeline.py"], &main);
    assert!(ran.status.success(), "{}", printed(&ran));
    // Listing the experiment, creating it, creating the run: each passed kfauth.
    let passed = setup.gateway.stats().counter("kfauth.jwt.allowed");
    assert!(passed >= 3, "{passed} requests passed; {}", printed(&ran));
    let user = "github:repo:octo-org/octo-repo:ref:refs/heads/main";
    let reviews: Vec<Value> = setup
        .api
        .sar_requests()
        .into_iter()
        .filter(|body| body["spec"]["user"] == user)
        .map(|body| body["spec"]["resourceAttributes"].clone())
        .collect();
    assert!(
        reviews.contains(&json!({"namespace": NAMESPACE, "group": "pipelines.kubeflow.org", "resource": "experiments", "verb": "list"})),
        "the SDK's namespaced list was reviewed: {reviews:?}"
    );

    let other = github_token(
        Idp::shared(),
        "octo-org/other-repo",
        "refs/heads/main",
        AUDIENCE,
    );
    let refused = python(&interpreter, &dir, &["run_pipeline.py"], &other);
    let text = printed(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(text.contains("403") && text.contains("forbidden"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
