//! Header values that are not UTF-8. HTTP/1.1 allows obs-text (bytes
//! 0x80-0xFF, RFC 9110 section 5.5) in field values and Envoy passes them to
//! the module as they came. The SDK's header reading unwrapped them as UTF-8,
//! so one such byte in any request header trapped the worker's VM (503 for
//! every request after); kfauth's own ABI bindings (src/proxy_abi.rs) read
//! them with U+FFFD instead:
//! - a valid token with a Latin-1 header beside it → forwarded with the
//!   verified identity and that header's bytes unchanged; the worker keeps
//!   answering;
//! - a spoofed identity header whose value is not UTF-8 → removed, the
//!   upstream sees only the verified identity;
//! - without a token, such a header does not let the request through.

// The upstream keeps raw heads here (tests/raw_upstream): the echo's JSON
// account cannot carry a header value that is not UTF-8.

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
use kfauth_testkit::{expect, EnvoySettings, Gateway};
use raw_upstream::{get_raw, values, RawUpstream};
use serde_json::json;

#[test]
fn header_values_that_are_not_utf8_are_read_not_trapped_on() {
    let upstream = RawUpstream::start();
    let g = Gateway::start_with(with_rules_required(), |settings| EnvoySettings {
        upstream_port: upstream.port,
        ..settings
    });
    let token = Signer::shared().sign_standard("ES256", &valid());
    let bearer = format!("Authorization: Bearer {token}");
    let last_head = || upstream.last_head();

    // A Latin-1 value beside a good token: forwarded as alice, the value's
    // bytes as they came.
    let response = get_raw(&g, &[bearer.as_bytes(), b"X-Latin1: caf\xe9"]);
    assert_eq!(response.status, 200, "{response:?}");
    let head = last_head();
    assert_eq!(values(&head, "kubeflow-userid"), [b"alice@example.com"]);
    assert_eq!(values(&head, "x-latin1"), [b"caf\xe9"]);
    g.assert_no_vm_trap();

    // A spoofed identity whose value is not UTF-8: removed.
    let response = get_raw(
        &g,
        &[
            bearer.as_bytes(),
            b"kubeflow-userid: r\xf6ot@example.com",
            b"Kubeflow-Groups: \xff\xfe",
        ],
    );
    assert_eq!(response.status, 200, "{response:?}");
    let head = last_head();
    assert_eq!(values(&head, "kubeflow-userid"), [b"alice@example.com"]);
    assert_eq!(values(&head, "kubeflow-groups"), [b"team-a"]);

    // No token: the odd header buys nothing.
    let forwarded = upstream.count();
    expect::token_missing(&get_raw(&g, &[b"kubeflow-userid: r\xf6ot@example.com"]));
    assert_eq!(upstream.count(), forwarded, "nothing forwarded");

    // The worker still answers.
    let response = get_raw(&g, &[bearer.as_bytes()]);
    assert_eq!(response.status, 200, "{response:?}");
    g.assert_no_vm_trap();
}

/// The suites' rule, with a token required on every path.
fn with_rules_required() -> serde_json::Value {
    kfauth_testkit::plugin_config::with_rules(vec![rule(json!({}))], json!({"requireJwt": true}))
}
