//! The identity headers the upstream trusts come only from a verified token.
//! A client sends `kubeflow-userid` and `kubeflow-groups` itself (mixed case,
//! each twice, exactly as written on the wire); the upstream sees:
//! - no copy of them on a request without a token (requireJwt: false);
//! - no copy of them on a skipped path;
//! - exactly the verified values on a request with a valid token;
//! - no `kubeflow-groups` when the valid token has no `groups` claim;
//! - other headers unchanged.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kfauth_testkit::plugin_config::{claims, inline_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, scenarios, Alg, Echoed, Gateway, Idp};
use serde_json::json;

const SPOOFED: [(&str, &str); 5] = [
    ("Kubeflow-Userid", "admin@example.com"),
    ("KUBEFLOW-GROUPS", "cluster-admins"),
    ("X-Unrelated", "kept"),
    ("kubeFlow-userID", "root@example.com"),
    ("Kubeflow-Groups", "system:masters"),
];

fn send_spoofed(gateway: &Gateway, path: &str, token: Option<&str>) -> Echoed {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = SPOOFED.to_vec();
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer));
    }
    expect::allowed(&gateway.get_verbatim(path, &headers))
}

fn assert_no_identity(seen: &Echoed) {
    assert_eq!(seen.header_values("kubeflow-userid"), Vec::<&str>::new());
    assert_eq!(seen.header_values("kubeflow-groups"), Vec::<&str>::new());
}

fn removed_without_a_token(gateway: &Gateway) {
    assert_no_identity(&send_spoofed(gateway, "/echo", None));
}

fn removed_on_a_skipped_path(gateway: &Gateway) {
    assert_no_identity(&send_spoofed(gateway, "/dex/auth", None));
}

fn replaced_by_the_verified_values_with_a_valid_token(gateway: &Gateway) {
    let token = Idp::shared().sign(Alg::RS256, &claims("alice@example.com", &["team-a"]));
    let seen = send_spoofed(gateway, "/echo", Some(&token));
    assert_eq!(
        seen.header_values("kubeflow-userid"),
        vec!["alice@example.com"]
    );
    assert_eq!(seen.header_values("kubeflow-groups"), vec!["team-a"]);
}

fn removed_when_the_valid_token_lacks_the_claim(gateway: &Gateway) {
    let mut c = claims("bob@example.com", &[]);
    c.as_object_mut().unwrap().remove("groups");
    let token = Idp::shared().sign(Alg::ES256, &c);
    let seen = send_spoofed(gateway, "/echo", Some(&token));
    assert_eq!(
        seen.header_values("kubeflow-userid"),
        vec!["bob@example.com"]
    );
    assert_eq!(seen.header_values("kubeflow-groups"), Vec::<&str>::new());
}

fn other_headers_are_unchanged(gateway: &Gateway) {
    let seen = send_spoofed(gateway, "/echo", None);
    assert_eq!(seen.header_values("x-unrelated"), vec!["kept"]);
}

#[test]
fn client_sent_identity_headers_never_reach_the_upstream() {
    let gateway = Gateway::start(with_rules(
        vec![inline_rule(ISSUER, Idp::shared())],
        json!({"skipPaths": ["^/dex/"]}),
    ));
    scenarios!(
        &gateway,
        [
            removed_without_a_token,
            removed_on_a_skipped_path,
            replaced_by_the_verified_values_with_a_valid_token,
            removed_when_the_valid_token_lacks_the_claim,
            other_headers_are_unchanged,
        ]
    );
}
