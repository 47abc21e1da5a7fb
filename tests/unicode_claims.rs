//! Claims that are not ASCII: users whose names are not ASCII are not locked
//! out. A mapped claim goes to the upstream as its UTF-8 bytes, exactly, as
//! Envoy's own `jwt_authn` writes `claim_to_headers`; only what could split,
//! smuggle or disguise an identity is refused:
//! - a Unicode email (`zoë@example.com`, `用户@例子.公司`) and group names
//!   (`équipe-a`, `команда`) → 200; the upstream reads `kubeflow-userid` and
//!   `kubeflow-groups` byte for byte as UTF-8 (a raw socket checks the
//!   bytes), and a spoofed non-ASCII identity beside them is removed;
//! - a control character in a mapped claim, even beside non-ASCII text (CR/LF,
//!   NUL, tab, ESC, DEL, the C1 controls NEL U+0085 and U+009F), or in one
//!   group of a list → 401 token_malformed, nothing forwarded;
//! - whitespace at either end (space, NBSP, U+3000) → 401 token_malformed;
//!   inside a value it passes;
//! - Envoy's `jwt_authn` in the same Envoy build, given the same token,
//!   forwards the same email bytes (its arrays are base64 JSON, kfauth joins
//!   them), and fails a request whose claim has a control character other
//!   than tab at its HTTP/1 codec (503 `invalid header value`) instead of
//!   refusing the token: the behaviour kfauth's refusal replaces.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial_support;
mod raw_upstream;

use adversarial_support::*;
use kfauth_testkit::forge::Signer;
use kfauth_testkit::istio::{jwt_authn_config, JWT_AUTHN_FILTER};
use kfauth_testkit::plugin_config::with_rules;
use kfauth_testkit::{expect, EnvoySettings, Gateway, HttpResponse};
use raw_upstream::{get_raw, values, RawUpstream};
use serde_json::{json, Value};

fn token(email: &str, groups: &[&str]) -> String {
    Signer::shared().sign_standard("ES256", &with(json!({"email": email, "groups": groups})))
}

fn send(g: &Gateway, token: &str, extra: &[&[u8]]) -> HttpResponse {
    let bearer = format!("Authorization: Bearer {token}");
    let mut lines: Vec<&[u8]> = vec![bearer.as_bytes()];
    lines.extend_from_slice(extra);
    get_raw(g, &lines)
}

fn start(upstream: &RawUpstream) -> Gateway {
    Gateway::start_with(
        with_rules(vec![rule(json!({}))], json!({"requireJwt": true})),
        |settings| EnvoySettings {
            upstream_port: upstream.port,
            ..settings
        },
    )
}

fn non_ascii_identities_reach_the_upstream_as_utf8(g: &Gateway, upstream: &RawUpstream) {
    for (email, groups) in [
        ("zoë@example.com", &["équipe-a", "команда"][..]),
        ("用户@例子.公司", &["团队", "team-b"][..]),
        ("zoë\u{a0}x@example.com", &["a b"][..]),
    ] {
        let response = send(
            g,
            &token(email, groups),
            &[
                "kubeflow-userid: röot@example.com".as_bytes(),
                b"Kubeflow_Groups: \xc3\xa9",
            ],
        );
        assert_eq!(response.status, 200, "{email}: {response:?}");
        let head = upstream.last_head();
        assert_eq!(
            values(&head, "kubeflow-userid"),
            [email.as_bytes()],
            "{email}"
        );
        assert_eq!(
            values(&head, "kubeflow-groups"),
            [groups.join(",").as_bytes()],
            "{email}"
        );
        assert!(values(&head, "kubeflow_groups").is_empty());
    }
    // The exact bytes, not merely text that decodes alike.
    send(g, &token("zoë@example.com", &["команда"]), &[]);
    let head = upstream.last_head();
    assert_eq!(
        values(&head, "kubeflow-userid"),
        [b"zo\xc3\xab@example.com"]
    );
    assert_eq!(
        values(&head, "kubeflow-groups"),
        [b"\xd0\xba\xd0\xbe\xd0\xbc\xd0\xb0\xd0\xbd\xd0\xb4\xd0\xb0"]
    );
    g.assert_no_vm_trap();
}

fn control_characters_are_still_refused(g: &Gateway, upstream: &RawUpstream) {
    let forwarded = upstream.count();
    for email in [
        "zoë@example.com\r\nkubeflow-groups: admins",
        "zoë@example.com\nx",
        "zoë\u{0}@example.com",
        "zoë\t@example.com",
        "zoë\u{1b}[31m@example.com",
        "zoë\u{7f}@example.com",
        "zoë\u{85}@example.com",
        "zoë\u{9f}@example.com",
    ] {
        let t = token(email, &["équipe-a"]);
        expect::rejected(&send(g, &t, &[]), "token_malformed");
    }
    let t = token(
        "zoë@example.com",
        &["équipe-a", "команда\r\nkubeflow-userid: root"],
    );
    expect::rejected(&send(g, &t, &[]), "token_malformed");
    assert_eq!(upstream.count(), forwarded, "nothing forwarded");
}

fn whitespace_at_either_end_is_refused(g: &Gateway, upstream: &RawUpstream) {
    let forwarded = upstream.count();
    for email in [
        "zoë@example.com ",
        " zoë@example.com",
        "\u{a0}zoë@example.com",
        "zoë@example.com\u{3000}",
    ] {
        expect::rejected(&send(g, &token(email, &[]), &[]), "token_malformed");
    }
    assert_eq!(upstream.count(), forwarded, "nothing forwarded");
}

#[test]
fn non_ascii_claims() {
    let upstream = RawUpstream::start();
    let gateway = start(&upstream);
    for scenario in [
        non_ascii_identities_reach_the_upstream_as_utf8 as fn(&Gateway, &RawUpstream),
        control_characters_are_still_refused,
        whitespace_at_either_end_is_refused,
    ] {
        scenario(&gateway, &upstream);
    }
    gateway.assert_no_vm_trap();
}

/// What Envoy's own filter does with the same tokens, as Istio configures it
/// for the same rule (`outputClaimToHeaders` → `claim_to_headers`).
#[test]
fn envoys_jwt_authn_forwards_the_same_utf8_bytes() {
    let upstream = RawUpstream::start();
    let rule: Value = rule(json!({}));
    let native = Gateway::start_with(Value::Null, |settings| {
        EnvoySettings {
            upstream_port: upstream.port,
            ..settings
        }
        .with_http_filter(JWT_AUTHN_FILTER, &jwt_authn_config(&[rule]).unwrap())
        .without_kfauth()
    });
    let kfauth_upstream = RawUpstream::start();
    let kfauth = start(&kfauth_upstream);
    for email in ["zoë@example.com", "用户@例子.公司"] {
        let t = token(email, &["équipe-a"]);
        assert_eq!(send(&native, &t, &[]).status, 200);
        assert_eq!(send(&kfauth, &t, &[]).status, 200);
        let native_bytes = values(&upstream.last_head(), "kubeflow-userid");
        assert_eq!(native_bytes, [email.as_bytes()]);
        assert_eq!(
            values(&kfauth_upstream.last_head(), "kubeflow-userid"),
            native_bytes
        );
    }
    // A control character: Envoy's codec fails the upstream request, kfauth
    // refuses the token before it.
    let t = token("zoë\u{1}@example.com", &[]);
    let response = send(&native, &t, &[]);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.body.contains("invalid header value"),
        "{response:?}"
    );
    expect::rejected(&send(&kfauth, &t, &[]), "token_malformed");
}
