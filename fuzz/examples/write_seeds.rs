//! Writes the seed corpus under `fuzz/corpus/<target>/` (run from `fuzz/`:
//! `cargo run --example write_seeds`). Tokens are signed with the harness's
//! fixed keys, so the files are the same on every run.

use std::fs;
use std::path::Path;

use kfauth_fuzz::keys::{self, AUDIENCE, ISSUER};
use kfauth_fuzz::tokens::seeds;
use serde_json::json;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    for seed in seeds() {
        write(
            "token_verify",
            &format!("{}.jwt", seed.name),
            seed.token.as_bytes(),
        );
    }
    // Structured cases: seed index, no edits, the seeds' time.
    for index in 0..seeds().len() as u8 {
        write("token_verify", &format!("case-seed-{index:02}"), &[index]);
    }

    write(
        "jwks_parse",
        "harness-rule-0.json",
        keys::jwks_rule_0().to_string().as_bytes(),
    );
    write(
        "jwks_parse",
        "harness-rule-1.json",
        keys::jwks_rule_1().to_string().as_bytes(),
    );
    write("jwks_parse", "empty.json", br#"{"keys":[]}"#);
    write(
        "jwks_parse",
        "odd-members.json",
        json!({"keys": [
            {"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "kid": "bad-point", "x": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
            {"kty": "OKP", "crv": "X25519", "x": "AA"},
            {"kty": "RSA", "alg": "ES256", "n": "AA", "e": "AQAB"},
            {"kid": "no-kty"},
            "not an object",
        ]})
        .to_string()
        .as_bytes(),
    );

    write(
        "config_parse",
        "harness.json",
        keys::config_json().to_string().as_bytes(),
    );
    write(
        "config_parse",
        "readme-dex.json",
        json!({
            "jwtRules": [
                {
                    "issuer": "http://dex.auth.svc.cluster.local:5556/dex",
                    "audiences": ["kubeflow-oidc-authservice"],
                    "jwksUri": "http://dex.auth.svc.cluster.local:5556/dex/keys",
                    "outputClaimToHeaders": [
                        {"header": "kubeflow-userid", "claim": "email"},
                        {"header": "kubeflow-groups", "claim": "groups"},
                    ],
                },
                {
                    "issuer": "https://kubernetes.default.svc.cluster.local",
                    "jwksUri": "http://cluster-jwks-proxy.istio-system.svc.cluster.local/openid/v1/jwks",
                    "forwardOriginalToken": true,
                    "outputClaimToHeaders": [
                        {"header": "kubeflow-userid", "claim": "sub"},
                        {"header": "kubeflow-groups", "claim": "groups"},
                    ],
                },
            ],
            "requireJwt": true,
            "skipPaths": ["^/dex/", "^/oauth2/"],
        })
        .to_string()
        .as_bytes(),
    );
    write(
        "config_parse",
        "readme-authorization.json",
        json!({
            "jwtRules": [{
                "issuer": "https://kubernetes.default.svc.cluster.local",
                "jwksUri": "http://cluster-jwks-proxy.istio-system.svc.cluster.local/openid/v1/jwks",
                "tokenReview": {"audiences": ["pipelines.kubeflow.org"]},
                "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}],
            }],
            "authorization": {
                "apiserver": {"cluster": "outbound|443||kubernetes.default.svc.cluster.local", "authority": "kubernetes.default.svc", "timeout": "2s"},
                "groupsClaim": "groups",
                "rules": [
                    {
                        "match": {
                            "hosts": ["^(?P<isvc>[^.]+)\\.(?P<namespace>[^.]+)\\.example\\.com$"],
                            "paths": ["^/v1/models/(?P<model>[^/:]+):predict$"],
                        },
                        "resourceAttributes": {"namespace": "{host.namespace}", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "{path.model}", "verb": "get"},
                    },
                    {
                        "match": {"paths": ["^/pipeline/apis/v2beta1/runs$"], "methods": ["GET"]},
                        "resourceAttributes": {"namespace": "{query.namespace}", "group": "pipelines.kubeflow.org", "resource": "runs", "verb": "list"},
                    },
                ],
            },
        })
        .to_string()
        .as_bytes(),
    );
    write(
        "config_parse",
        "readme-grpc.json",
        json!({
            "jwtRules": [{"issuer": ISSUER, "audiences": [AUDIENCE], "fromCookies": ["id_token"], "fromParams": ["token"], "fromHeaders": [{"name": "X-Token", "prefix": "Bearer "}]}],
            "grpc": {"cookiePaths": ["^/ml_metadata"], "stripCookies": ["_oauth2_proxy"], "maxCookieBytes": 4096},
            "clockSkew": "30s",
            "jwksRefreshInterval": "5m",
            "jwtCacheSize": 100,
        })
        .to_string()
        .as_bytes(),
    );

    // review_answer: a status/audience byte, then the body (shapes of
    // authorization.k8s.io/v1 SubjectAccessReview and authentication.k8s.io/v1 TokenReview).
    let answers: [(&str, u8, serde_json::Value); 6] = [
        (
            "sar-allowed.bin",
            0,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": {"user": "alice@example.com", "resourceAttributes": {"namespace": "team-a", "verb": "get", "group": "serving.kserve.io", "resource": "inferenceservices", "name": "iris"}}, "status": {"allowed": true, "reason": "RBAC: allowed by RoleBinding \"edit/team-a\""}}),
        ),
        (
            "sar-denied.bin",
            1,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": {"allowed": false, "denied": true, "reason": "no RBAC policy matched"}}),
        ),
        (
            "sar-no-opinion.bin",
            0,
            json!({"kind": "SubjectAccessReview", "status": {"allowed": false, "evaluationError": "webhook timeout"}}),
        ),
        (
            "tokenreview-authenticated.bin",
            8,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": {"authenticated": true, "user": {"username": "system:serviceaccount:team-a:default-editor", "uid": "7e1b", "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"]}, "audiences": ["pipelines.kubeflow.org"]}}),
        ),
        (
            "tokenreview-rejected.bin",
            0,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": {"authenticated": false, "error": "service account team-a/default-editor has been deleted"}}),
        ),
        (
            "status-500.bin",
            2,
            json!({"kind": "Status", "status": "Failure", "code": 500}),
        ),
    ];
    for (name, choice, body) in answers {
        let mut bytes = vec![choice];
        bytes.extend(body.to_string().into_bytes());
        write("review_answer", name, &bytes);
    }

    // cookie_diet: flags (content type | path << 3 | prior << 6), threshold / 4,
    // names to strip, then Cookie headers.
    let session = "x".repeat(600);
    let diets: [(&str, u8, u8, String); 5] = [
        ("strip-all.bin", 0, 0, format!("\n_oauth2_proxy={session}; theme=dark")),
        ("strip-named.bin", 1, 0, format!("_oauth2_proxy_0,_oauth2_proxy_1\na=1; _oauth2_proxy_0={session}\n_oauth2_proxy_1=y;b=2")),
        ("under-threshold.bin", 2, 250, "session\nsession=s; a=1".to_string()),
        ("after-token-removal.bin", 0xc0, 0, "session\nid_token=t; session=s; other=o\nsession=s; other=o".to_string()),
        ("not-grpc.bin", 4, 0, "\na=1".to_string()),
    ];
    for (name, flags, threshold, text) in diets {
        let mut bytes = vec![flags, threshold];
        bytes.extend(text.into_bytes());
        write("cookie_diet", name, &bytes);
    }

    // session: flags (path | prior << 6), budget (256 + 64 x byte), session
    // names (empty: the default), then Cookie headers.
    let part = "s".repeat(3000);
    let shields: [(&str, u8, u8, String); 6] = [
        ("split-session.bin", 0, 123, format!("\n_xsrf=2|a; oauth2_proxy_kubeflow_0={part}; xoauth2_proxy_kubeflow=k\noauth2_proxy_kubeflow_1={part};note=oauth2_proxy_kubeflow=v; oauth2_proxy_kubeflow_x=1\noauth2_proxy_kubeflow_2={part}")),
        ("exempt.bin", 1, 0, "\noauth2_proxy_kubeflow=s; a=1".to_string()),
        ("named.bin", 4, 0, "sess,other\nsess_01=a; sess=b; sess_=c; other_9=d; e=f".to_string()),
        ("over-budget.bin", 5, 0, format!("\nbig={}", "v".repeat(400))),
        ("after-token-removal.bin", 0xc0, 0, "\nid_token=t; oauth2_proxy_kubeflow=s; o=1\noauth2_proxy_kubeflow=s; o=1".to_string()),
        ("removed.bin", 0x80, 0, "\noauth2_proxy_kubeflow=s".to_string()),
    ];
    for (name, flags, budget, text) in shields {
        let mut bytes = vec![flags, budget];
        bytes.extend(text.into_bytes());
        write("session", name, &bytes);
    }
}
