//! Where the time of a never-seen RS256 token goes: decoding it, checking it
//! (signature and claims), the signature alone, and the whole decision, in µs.
//!
//! Native: `cargo run --release --example decide_bench`
//! V8: `cargo build --release --target wasm32-wasip1 --example decide_bench`, then
//! `node --no-warnings examples/rsa_bench_wasi.mjs target/wasm32-wasip1/release/examples/decide_bench.wasm`

use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::*;
use kfauth::authz::subject_access_review::SubjectAccessReviewCache;
use kfauth::authz::token_review::TokenReviewCache;
use kfauth::config::Config;
use kfauth::keystore::KeyStore;
use kfauth::pipeline::{decide, Caches, KeyWait};
use kfauth::request::RequestView;
use kfauth::rsa_pkcs1::{RsaHash, RsaVerifyingKey};
use kfauth::verified_token_cache::VerifiedTokenCache;
use serde_json::json;

const K2048: &str = include_str!("../src/rsa_pkcs1/testdata/k2048.pem");
const ISSUER: &str = "https://issuer.example";
const NOW: u64 = 1_800_000_000;

fn main() {
    let count = if cfg!(target_arch = "wasm32") {
        300
    } else {
        2000
    };
    let pair = RS256KeyPair::from_pem(K2048).unwrap().with_key_id("k1");
    let components = pair.public_key().to_components();
    let jwks = json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(&components.n), "e": URL_SAFE_NO_PAD.encode(&components.e)}]});
    let config = Config::parse(
        json!({"jwtRules": [{"issuer": ISSUER, "audiences": ["kubeflow"], "jwks": jwks.to_string(),
            "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"},
                                     {"header": "kubeflow-groups", "claim": "groups"}]}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let tokens: Vec<String> = (0..count)
        .map(|n| {
            let mut claims = JWTClaims {
                issued_at: Some(UnixTimeStamp::from_secs(NOW - 10)),
                expires_at: Some(UnixTimeStamp::from_secs(NOW + 3600)),
                invalid_before: None,
                issuer: Some(ISSUER.into()),
                subject: Some(format!("user-{n}")),
                audiences: Some(Audiences::AsString("kubeflow".into())),
                jwt_id: Some(format!("jti-{n}")),
                nonce: None,
                custom: json!({"email": format!("user{n}@example.com"), "groups": ["team-a", "team-b"]}),
            };
            claims.custom["email_verified"] = true.into();
            pair.sign(claims).unwrap()
        })
        .collect();
    let requests: Vec<RequestView> = tokens
        .iter()
        .map(|token| {
            RequestView::from_pairs(vec![
                (":method".into(), "GET".into()),
                (":path".into(), "/pipeline/apis/v2beta1/runs".into()),
                (":authority".into(), "kubeflow.example.com".into()),
                ("authorization".into(), format!("Bearer {token}")),
            ])
        })
        .collect();
    let now = std::time::Duration::from_secs(NOW);
    let rule = &config.rules[0];
    let keys = KeyStore::new(&config, 1);
    let key = RsaVerifyingKey::from_components(&components.n, &components.e).unwrap();

    let per = |f: &mut dyn FnMut(usize)| {
        f(0); // warm
        let start = Instant::now();
        for n in 0..count {
            f(n);
        }
        start.elapsed().as_secs_f64() * 1e6 / count as f64
    };
    let decode_us = per(&mut |n| {
        kfauth::verify::decode(&tokens[n]).unwrap();
    });
    let signature_us = per(&mut |n| {
        let (input, signature) = tokens[n].rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert!(key.verify(RsaHash::Sha256, input.as_bytes(), &signature));
    });
    let key_set = match keys.state(&config, 0, now) {
        kfauth::keystore::KeyState::Ready(key_set) => key_set,
        _ => panic!("inline keys not ready"),
    };
    let verify_us = per(&mut |n| {
        let unverified = kfauth::verify::decode(&tokens[n]).unwrap();
        kfauth::verify::verify(
            &tokens[n],
            &unverified,
            rule,
            key_set,
            now,
            config.clock_skew,
        )
        .unwrap();
    });
    let verified = VerifiedTokenCache::new(0);
    let decisions = SubjectAccessReviewCache::new(0);
    let reviews = TokenReviewCache::new(0);
    let caches = Caches {
        keys: &keys,
        verified_tokens: &verified,
        subject_access_reviews: &decisions,
        token_reviews: &reviews,
    };
    let decide_us = per(&mut |n| {
        let outcome = decide(&config, &caches, &requests[n], now, KeyWait::Spent);
        assert!(
            matches!(outcome, kfauth::outcome::Outcome::Allow { .. }),
            "{outcome:?}"
        );
    });
    println!(
        "never-seen RS256-2048 token, µs: decode {decode_us:.1}, signature {signature_us:.1}, \
         decode+verify {verify_us:.1}, whole decide {decide_us:.1} ({count} tokens)"
    );

    // The path of nearly every request: a token verified before.
    let remembered = VerifiedTokenCache::new(10_000);
    let caches = Caches {
        verified_tokens: &remembered,
        ..caches
    };
    for request in &requests {
        decide(&config, &caches, request, now, KeyWait::Spent);
    }
    let passes = 20;
    let per_cached = |f: &mut dyn FnMut(usize)| {
        per(&mut |n| {
            for _ in 0..passes {
                f(n)
            }
        }) / f64::from(passes)
    };
    let digest_us = per_cached(&mut |n| {
        std::hint::black_box(remembered.digest(&tokens[n]));
    });
    // What Envoy hands over for a wrk request: its headers plus the ones it adds.
    let view_us = per_cached(&mut |n| {
        std::hint::black_box(RequestView::from_pairs(vec![
            (":authority".into(), "127.0.0.1:10000".into()),
            (":path".into(), "/".into()),
            (":method".into(), "GET".into()),
            (":scheme".into(), "http".into()),
            ("authorization".into(), format!("Bearer {}", tokens[n])),
            ("x-forwarded-proto".into(), "http".into()),
            (
                "x-request-id".into(),
                "5d6c3bd1-7a39-4b8e-9a71-2f0e3c1d4b5a".into(),
            ),
        ]));
    });
    let cached_us = per_cached(&mut |n| {
        let outcome = decide(&config, &caches, &requests[n], now, KeyWait::Spent);
        assert!(
            matches!(outcome, kfauth::outcome::Outcome::Allow { .. }),
            "{outcome:?}"
        );
    });
    println!(
        "token verified before, µs: cache digest {digest_us:.2}, request view from pairs \
         {view_us:.2}, whole decide {cached_us:.2}"
    );
}
