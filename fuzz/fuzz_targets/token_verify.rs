//! Token parsing and verification, directly (`verify::decode` + `verify::verify`)
//! and through the whole request decision (`pipeline::decide`, twice, so that
//! the verified-token cache is exercised across a clock change).
//!
//! Input: a literal token (the committed corpus: bytes starting `ey`), else an
//! `arbitrary` [`Case`]: a genuinely signed seed plus mutations.
//!
//! Invariants: no panic; a token is accepted only when its signing input was
//! signed by the harness with a key the rule's JWKS trusts for the header's
//! `alg` and `kid` (a key without `kid` for a `kid` no key carries), the signature checks out with the RustCrypto crates
//! directly, and its registered claims allow it at that time (issuer, `exp`
//! required, `nbf`/`iat`, audience); the pipeline decides exactly as the direct
//! verification does.
#![no_main]

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use kfauth::authz::subject_access_review::SubjectAccessReviewCache;
use kfauth::authz::token_review::TokenReviewCache;
use kfauth::config::Config;
use kfauth::jwt_rule::KeySource;
use kfauth::jwks::Algorithm;
use kfauth::keystore::KeyStore;
use kfauth::outcome::{Outcome, Reason};
use kfauth::pipeline::{decide, Caches, KeyWait};
use kfauth::request::RequestView;
use kfauth::verified_token_cache::VerifiedTokenCache;
use kfauth::verify::{decode, verify};
use kfauth_fuzz::keys::{self, AUDIENCE, CLOCK_SKEW_SECS, NOW_SECS};
use kfauth_fuzz::tokens::{seeds, unb64, Built, Case, Signed};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

thread_local! {
    static CONFIG: Config = Config::parse(keys::config_json().to_string().as_bytes()).unwrap();
}

fuzz_target!(|data: &[u8]| {
    let built = if data.starts_with(b"ey") {
        Built {
            token: String::from_utf8_lossy(data).into_owned(),
            signed: Vec::new(),
            now_secs: NOW_SECS,
        }
    } else {
        let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) else {
            return;
        };
        case.build()
    };
    CONFIG.with(|config| check(config, &built));
});

fn check(config: &Config, built: &Built) {
    let now = Duration::from_secs(built.now_secs);
    if let Ok(rule) = verify_directly(config, &built.token, now) {
        assert_genuine(&built.token, rule, built);
    }

    // The pipeline sees the Authorization header; it trims the token.
    let seen = built.token.trim();
    let expected = if seen.is_empty() {
        Err(Reason::TokenMissing)
    } else {
        verify_directly(config, seen, now)
    };
    let request = RequestView {
        method: "GET".into(),
        path: "/pipeline/".into(),
        authority: "kubeflow.example.test".into(),
        headers: [("authorization", format!("Bearer {}", built.token))]
            .into_iter()
            .collect(),
        ..RequestView::default()
    };
    let keys = KeyStore::new(config, 1);
    let verified = VerifiedTokenCache::new(16);
    let decisions = SubjectAccessReviewCache::new(16);
    let tokens = TokenReviewCache::new(16);
    let caches = Caches {
        keys: &keys,
        verified_tokens: &verified,
        subject_access_reviews: &decisions,
        token_reviews: &tokens,
    };
    // First at the seeds' time or earlier (a good token is remembered), then at
    // the case's: the host clock does not go backwards.
    decide(
        config,
        &caches,
        &request,
        now.min(Duration::from_secs(NOW_SECS)),
        KeyWait::Spent,
    );
    let outcome = decide(config, &caches, &request, now, KeyWait::Spent);
    match (&expected, &outcome) {
        (
            Ok(rule),
            Outcome::Allow {
                identity: Some(identity),
                ..
            },
        ) => {
            assert_eq!(identity.rule, *rule);
            assert_genuine(seen, *rule, built);
        }
        (Err(reason), Outcome::Deny(denial)) => assert_eq!(denial.reason, *reason, "{seen:?}"),
        _ => panic!("pipeline {outcome:?} but direct verification {expected:?} for {seen:?}"),
    }
}

fn verify_directly(config: &Config, token: &str, now: Duration) -> Result<usize, Reason> {
    let unverified = decode(token)?;
    let index = *unverified
        .issuer()
        .and_then(|issuer| config.rule_by_issuer.get(issuer))
        .ok_or(Reason::IssuerUnknown)?;
    let rule = &config.rules[index];
    let KeySource::Inline(keys) = &rule.keys else {
        unreachable!("the harness configures inline keys")
    };
    verify(token, &unverified, rule, keys, now, config.clock_skew)?;
    Ok(index)
}

/// Panics unless `token`, accepted under rule `rule`, is one the harness signed
/// with a key the rule trusts, and its claims allow it now. Everything here is
/// read again from the token text, not from kfauth's parse.
fn assert_genuine(token: &str, rule: usize, built: &Built) {
    let (input, signature) = token.rsplit_once('.').expect("three segments");
    let (header, payload) = input.split_once('.').expect("three segments");
    assert!(
        !payload.contains('.'),
        "accepted with more than three segments: {token}"
    );
    let signature = unb64(signature).expect("accepted a signature that is not base64url");
    let header: Map<String, Value> =
        serde_json::from_slice(&unb64(header).expect("header base64url")).expect("header JSON");
    let claims: Map<String, Value> =
        serde_json::from_slice(&unb64(payload).expect("payload base64url")).expect("payload JSON");

    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .expect("accepted without alg");
    // The alg name exactly as the harness signs it (not an alias kfauth also reads).
    let algorithm = Algorithm::from_name(alg_name)
        .filter(|algorithm| algorithm.name() == alg_name)
        .unwrap_or_else(|| panic!("accepted with alg {alg_name:?}: {token}"));
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(other) => panic!("accepted with kid {other}: {token}"),
    };
    let signed_by_harness = |signed: &Signed, key| {
        signed.input == input && signed.key == Some(key) && signed.algorithm == Some(algorithm)
    };
    // The keys a token may be checked against (RFC 7517 makes `kid` optional):
    // those carrying its `kid`; when none does, those without `kid`; when it
    // has none, all of them. (The cap on checks per token only refuses more.)
    let named = kid.is_some_and(|kid| {
        keys::trusted(rule)
            .iter()
            .any(|trusted| trusted.kid == Some(kid))
    });
    let vouched = keys::trusted(rule).iter().any(|trusted| {
        (kid.is_none() || trusted.kid == kid || (!named && trusted.kid.is_none()))
            && trusted.algorithms.contains(&algorithm)
            && (built
                .signed
                .iter()
                .any(|signed| signed_by_harness(signed, trusted.key))
                || seeds()
                    .iter()
                    .filter_map(|seed| seed.signed.as_ref())
                    .any(|signed| signed_by_harness(signed, trusted.key)))
            && keys::verifies(trusted.key, algorithm, input.as_bytes(), &signature)
    });
    assert!(
        vouched,
        "accepted a token no trusted key signed (rule {rule}): {token}"
    );

    let issuer = claims.get("iss").and_then(Value::as_str);
    assert_eq!(
        issuer,
        Some([keys::ISSUER, keys::OTHER_ISSUER][rule]),
        "{token}"
    );
    let now = built.now_secs as f64;
    let skew = CLOCK_SKEW_SECS as f64 + 1.0;
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .expect("accepted without numeric exp");
    assert!(exp + skew >= now, "accepted after exp: {token}");
    for name in ["nbf", "iat"] {
        if let Some(value) = claims.get(name) {
            let time = value
                .as_f64()
                .unwrap_or_else(|| panic!("accepted with {name} {value}"));
            assert!(time <= now + skew, "accepted before {name}: {token}");
        }
    }
    if rule == 0 {
        let wanted = |aud: &str| aud == AUDIENCE || aud == "other-audience";
        let matches = match claims.get("aud") {
            Some(Value::String(aud)) => wanted(aud),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(wanted),
            _ => false,
        };
        assert!(matches, "accepted without a configured audience: {token}");
    }
}
