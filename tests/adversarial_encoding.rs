//! Encoding games. A compact JWS is exactly three base64url segments without
//! padding (RFC 7515 section 7.1, RFC 7515 section 2): anything else is 401
//! token_malformed, even when the odd text is what was signed.
//! - `=` padding, the standard alphabet (`+`, `/`), a byte that is not base64;
//! - extra, missing or empty segments; an empty signature → signature_invalid;
//! - whitespace inside the token; around it (HTTP's optional whitespace) it passes;
//! - header or payload not JSON, or JSON but not an object (array, string, number);
//! - duplicate member names (two `iss`, two `alg`, nested): refused, because
//!   JSON parsers disagree on which one counts;
//! - deep nesting: 20 levels pass, past serde_json's 128 is token_malformed;
//! - size: exactly 64 KiB passes, a byte more is token_malformed.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod adversarial_support;

use adversarial_support::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;
use kfauth_testkit::forge::{b64url, Signer, SIGNER_RSA_KID};
use kfauth_testkit::{expect, scenarios, Gateway};
use serde_json::json;

fn header() -> String {
    json!({"alg": "RS256", "typ": "JWT", "kid": SIGNER_RSA_KID}).to_string()
}

/// Signed by the trusted RSA key over exactly `header.payload` (raw JSON text).
fn signed_json(header: &str, payload: &str) -> String {
    Signer::shared().sign_bytes("RS256", header.as_bytes(), payload.as_bytes())
}

fn good() -> String {
    signed_json(&header(), &valid().to_string())
}

fn padding_is_refused(g: &Gateway) {
    // Lengths that are not multiples of 3 make padded encodings differ.
    let mut payload = valid().to_string();
    while payload.len().is_multiple_of(3) {
        payload.push(' ');
    }
    let mut head = header();
    while head.len().is_multiple_of(3) {
        head.push(' ');
    }
    let padded_payload = URL_SAFE.encode(payload.as_bytes());
    assert!(padded_payload.ends_with('='));
    let token = Signer::shared().sign_segments("RS256", &b64url(head.as_bytes()), &padded_payload);
    rejects(g, &token, "token_malformed");
    let token = Signer::shared().sign_segments(
        "RS256",
        &URL_SAFE.encode(head.as_bytes()),
        &b64url(payload.as_bytes()),
    );
    rejects(g, &token, "token_malformed");
    // Padding on the signature only. An RSA-2048 signature is 256 bytes: one `=`.
    let good = good();
    rejects(g, &format!("{good}="), "token_malformed");
}

fn standard_alphabet_is_refused(g: &Gateway) {
    // A claim whose encoding needs `-` and `_` in base64url.
    let mut filler = String::from("~~~?");
    let payload = loop {
        let payload = with(json!({"x": filler})).to_string();
        let url = b64url(payload.as_bytes());
        if url.contains('-') && url.contains('_') {
            break payload;
        }
        filler.push_str("~?>");
    };
    let standard = STANDARD.encode(payload.as_bytes());
    let standard = standard.trim_end_matches('=');
    assert!(standard.contains('+') && standard.contains('/'));
    let token = Signer::shared().sign_segments("RS256", &b64url(header().as_bytes()), standard);
    rejects(g, &token, "token_malformed");
    // The same claims in base64url pass: only the alphabet differs.
    accepts(g, &signed_json(&header(), &payload));
}

fn bytes_outside_base64url(g: &Gateway) {
    let good = good();
    let (head, rest) = good.split_once('.').unwrap();
    for bad in [
        format!("{head}!.{rest}"),
        format!("{head}.{}", rest.replacen('.', "%2E.", 1)),
        format!("{head}.*{rest}"),
    ] {
        rejects(g, &bad, "token_malformed");
    }
}

fn extra_segments(g: &Gateway) {
    let good = good();
    for bad in [
        format!("{good}.x"),
        format!("{good}."),
        format!("{good}.{}", b64url(b"x")),
        // The shape of a JWE (five segments).
        format!("{good}.a.b"),
    ] {
        rejects(g, &bad, "token_malformed");
    }
}

fn missing_and_empty_segments(g: &Gateway) {
    let good = good();
    let parts: Vec<&str> = good.split('.').collect();
    for bad in [
        format!("{}.{}", parts[0], parts[1]),
        parts[1].to_string(),
        "..".to_string(),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!("..{}", parts[2]),
    ] {
        rejects(g, &bad, "token_malformed");
    }
}

fn empty_signature(g: &Gateway) {
    let good = good();
    let (input, _) = good.rsplit_once('.').unwrap();
    rejects(g, &format!("{input}."), "signature_invalid");
}

fn whitespace_inside(g: &Gateway) {
    let good = good();
    let mid = good.len() / 2;
    for ws in [" ", "\t"] {
        rejects(
            g,
            &format!("{}{ws}{}", &good[..mid], &good[mid..]),
            "token_malformed",
        );
    }
    let (head, rest) = good.split_once('.').unwrap();
    rejects(g, &format!("{head}. {rest}"), "token_malformed");
}

fn whitespace_around_is_optional_whitespace(g: &Gateway) {
    let good = good();
    let response = get_verbatim(
        g,
        "/echo",
        &[("Authorization", &format!("Bearer {good} \t"))],
    );
    expect::allowed(&response);
}

fn header_or_payload_not_a_json_object(g: &Gateway) {
    let claims = valid().to_string();
    for (head, payload) in [
        ("not json".to_string(), claims.clone()),
        (r#"["RS256"]"#.to_string(), claims.clone()),
        (r#""RS256""#.to_string(), claims.clone()),
        ("256".to_string(), claims.clone()),
        (header(), "[1,2]".to_string()),
        (header(), r#""alice@example.com""#.to_string()),
        (header(), "1700000000".to_string()),
        (header(), "null".to_string()),
        (header(), format!("\u{feff}{claims}")),
        (header(), format!("{claims} trailing")),
    ] {
        rejects(g, &signed_json(&head, &payload), "token_malformed");
    }
    // Bytes that are not UTF-8.
    let token = Signer::shared().sign_bytes("RS256", header().as_bytes(), b"{\"iss\":\"\xff\"}");
    rejects(g, &token, "token_malformed");
}

fn duplicate_member_names(g: &Gateway) {
    let claims = valid().to_string();
    let inner = &claims[1..];
    for (head, payload) in [
        // Two `iss`: serde_json would keep the last, many others the first.
        (
            header(),
            format!(r#"{{"iss":"https://evil.example",{inner}"#),
        ),
        (header(), format!(r#"{{"email":"root@example.com",{inner}"#)),
        // The same value twice is refused too: the rule is simple.
        (header(), format!(r#"{{"aud":"kubeflow",{inner}"#)),
        (header(), format!(r#"{{"x":{{"a":1,"a":2}},{inner}"#)),
        (
            format!(r#"{{"alg":"none","alg":"RS256","kid":"{SIGNER_RSA_KID}"}}"#),
            claims.clone(),
        ),
        (
            format!(r#"{{"alg":"RS256","kid":"other","kid":"{SIGNER_RSA_KID}"}}"#),
            claims.clone(),
        ),
    ] {
        rejects(g, &signed_json(&head, &payload), "token_malformed");
    }
}

fn deep_nesting(g: &Gateway) {
    let nested = |depth: usize| {
        let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        let claims = valid().to_string();
        signed_json(&header(), &format!(r#"{{"deep":{text},{}"#, &claims[1..]))
    };
    accepts(g, &nested(20));
    rejects(g, &nested(200), "token_malformed");
    rejects(g, &nested(20_000), "token_malformed");
}

/// A valid token of exactly `len` characters, if the encoding allows it.
fn token_of_length(len: usize) -> Option<String> {
    let head = header();
    let signature_chars = 342; // RSA-2048: 256 bytes
    (40_000..50_000).find_map(|fill| {
        let payload = with(json!({"pad": "x".repeat(fill)})).to_string();
        let total = b64url(head.as_bytes()).len()
            + 1
            + b64url(payload.as_bytes()).len()
            + 1
            + signature_chars;
        if total > len + 8 {
            return Some(None);
        }
        (total == len).then(|| Some(signed_json(&head, &payload)))
    })?
}

fn size_limit_is_exactly_64_kib(g: &Gateway) {
    let at_limit = token_of_length(64 * 1024).expect("a 65536-character token");
    assert_eq!(at_limit.len(), 65536);
    accepts(g, &at_limit);
    let over = (64 * 1024 + 1..64 * 1024 + 4)
        .find_map(token_of_length)
        .expect("a token just over 64 KiB");
    rejects(g, &over, "token_malformed");
}

#[test]
fn encoding_games() {
    let gateway = start(json!({}), json!({}));
    scenarios!(
        &gateway,
        [
            padding_is_refused,
            standard_alphabet_is_refused,
            bytes_outside_base64url,
            extra_segments,
            missing_and_empty_segments,
            empty_signature,
            whitespace_inside,
            whitespace_around_is_optional_whitespace,
            header_or_payload_not_a_json_object,
            duplicate_member_names,
            deep_nesting,
            size_limit_is_exactly_64_kib,
        ]
    );
    explain_agrees(&gateway);
}
