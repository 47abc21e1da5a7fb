//! pluginConfig parsing (`config::Config::parse`).
//!
//! Invariants: no panic; parsing is deterministic (the same answer twice); an
//! error names a field (`pluginConfig` for the document itself, else a path
//! whose first step is a field of the input); an accepted object configuration
//! keeps what it was given: rules in order with their issuers, audiences, key
//! sources and claim headers, `requireJwt`, `bypassCorsPreflight` (default
//! true), `skipPaths`, `jwtCacheSize`, and
//! every header it writes among the identity headers it strips.
#![no_main]

use kfauth::config::Config;
use kfauth::jwt_rule::KeySource;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const FIELDS: [&str; 13] = [
    "jwtRules",
    "requireJwt",
    "bypassCorsPreflight",
    "skipPaths",
    "clockSkew",
    "jwksRefreshInterval",
    "jwksRefetchMinInterval",
    "jwksMaxStale",
    "authorization",
    "grpc",
    "session",
    "headerBudgets",
    "jwtCacheSize",
];

fuzz_target!(|data: &[u8]| {
    let first = Config::parse(data);
    let second = Config::parse(data);
    match (&first, &second) {
        (Err(one), Err(two)) => {
            assert_eq!(one, two, "two parses, two errors");
            assert!(!one.field.is_empty() && !one.message.is_empty(), "{one:?}");
            let step = one.field.split(['.', '[']).next().unwrap_or_default();
            // A known field or the document; otherwise an unknown field, which
            // the message quotes as read (searching the raw input for it would
            // have to undo JSON escapes: `\/`, `\"`, `\u..`).
            let named = step == "pluginConfig"
                || FIELDS.contains(&step)
                || one
                    .message
                    .contains(&format!("unknown field `{}`", one.field));
            assert!(named, "the error names no field: {one:?}");
        }
        (Ok(one), Ok(two)) => {
            assert_eq!(one.rules.len(), two.rules.len());
            check_kept(data, one);
        }
        _ => panic!(
            "two parses, two answers: {:?} / {:?}",
            first.is_ok(),
            second.is_ok()
        ),
    }
});

fn check_kept(data: &[u8], config: &Config) {
    let input: Value = serde_json::from_slice(data).expect("accepted a non-JSON configuration");
    // serde also reads a struct from an array of its fields; only objects are checked here.
    let Some(input) = input.as_object() else {
        return;
    };
    let rules = input
        .get("jwtRules")
        .and_then(Value::as_array)
        .expect("accepted without jwtRules");
    assert_eq!(config.rules.len(), rules.len());
    assert!(!rules.is_empty());
    assert_eq!(
        config.require_jwt,
        input
            .get("requireJwt")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    );
    assert_eq!(
        config.bypass_cors_preflight,
        input
            .get("bypassCorsPreflight")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    );
    assert_eq!(
        config.skip_paths.len(),
        input
            .get("skipPaths")
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    );
    if let Some(size) = input.get("jwtCacheSize").and_then(Value::as_u64) {
        assert_eq!(config.jwt_cache_size as u64, size);
    }
    for (index, (rule, raw)) in config.rules.iter().zip(rules).enumerate() {
        let Some(raw) = raw.as_object() else {
            continue;
        };
        let text = |name: &str| raw.get(name).and_then(Value::as_str);
        assert_eq!(Some(rule.issuer.as_str()), text("issuer"));
        assert_eq!(config.rule_by_issuer.get(&rule.issuer), Some(&index));
        let audiences: Vec<&str> = raw
            .get("audiences")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(rule.audiences, audiences);
        match (&rule.keys, text("jwks"), text("jwksUri")) {
            (KeySource::Inline(keys), Some(_), None) => assert!(!keys.is_empty()),
            (KeySource::Remote(endpoint), None, Some(uri)) => assert_eq!(endpoint.uri, uri),
            (KeySource::Discovery { .. }, None, None) => {}
            (keys, jwks, uri) => panic!("key source {keys:?} from jwks {jwks:?} / jwksUri {uri:?}"),
        }
        let claim_headers = raw.get("outputClaimToHeaders").and_then(Value::as_array);
        assert_eq!(rule.claim_headers.len(), claim_headers.map_or(0, Vec::len));
        for (kept, given) in rule
            .claim_headers
            .iter()
            .zip(claim_headers.into_iter().flatten())
        {
            let given_text = |name: &str| given.get(name).and_then(Value::as_str);
            assert_eq!(
                Some(kept.header.as_str()),
                given_text("header").map(str::to_ascii_lowercase).as_deref()
            );
            assert_eq!(Some(kept.claim.as_str()), given_text("claim"));
            assert_eq!(kept.prefix, given_text("prefix").unwrap_or_default());
            assert!(config.identity_headers.contains(&kept.header));
        }
        if let Some(header) = &rule.output_payload_to_header {
            assert!(config.identity_headers.contains(header));
        }
        assert!(!rule.locations.is_empty());
    }
}
