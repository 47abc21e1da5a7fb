//! Several VMs (one per Envoy worker) sharing one shared-data store.

use super::shared::MemorySharedData;
use super::*;
use crate::testutil::{rsa_jwk, rsa_jwks_json, DEX, NOW};
use serde_json::json;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const SECOND: Duration = Duration::from_secs(1);

fn config(extra: serde_json::Value) -> Config {
    let mut value = json!({"jwtRules": [
        {"issuer": DEX, "jwksUri": "http://dex:5556/dex/keys", "timeout": "2s"},
        {"issuer": "inline", "jwks": rsa_jwks_json()},
    ]});
    for (key, field) in extra.as_object().unwrap() {
        value[key] = field.clone();
    }
    Config::parse(value.to_string().as_bytes()).unwrap()
}

struct Gateway {
    config: Config,
    shared: MemorySharedData,
    vms: Vec<KeyStore>,
}

impl Gateway {
    fn new(workers: u64, extra: serde_json::Value) -> Gateway {
        let config = config(extra);
        let mut shared = MemorySharedData::default();
        let vms: Vec<KeyStore> = (1..=workers).map(|id| KeyStore::new(&config, id)).collect();
        for vm in &vms {
            vm.ensure_records(&config, &mut shared);
        }
        Gateway {
            config,
            shared,
            vms,
        }
    }

    /// Every VM's tick: read the record, then start a fetch if one is due.
    fn tick(&mut self, now: Duration) -> Vec<(usize, FetchPlan)> {
        let mut plans = Vec::new();
        for (index, vm) in self.vms.iter_mut().enumerate() {
            vm.sync(&self.config, 0, &self.shared, now);
            if let Some(plan) = vm.begin_fetch(&self.config, 0, &mut self.shared, now) {
                plans.push((index, plan));
            }
        }
        plans
    }

    fn answer(&mut self, vm: usize, body: Result<&[u8], String>, now: Duration) -> FetchResult {
        self.vms[vm].fetch_answered(&self.config, 0, body, &mut self.shared, now)
    }

    fn ready_everywhere(&self, now: Duration) -> bool {
        self.vms
            .iter()
            .all(|vm| matches!(vm.state(&self.config, 0, now), KeyState::Ready(_)))
    }
}

#[test]
fn one_vm_fetches_and_every_vm_gets_the_keys() {
    let mut gateway = Gateway::new(5, json!({}));
    let plans = gateway.tick(NOW);
    assert_eq!(plans.len(), 1, "one fetch for five VMs");
    let (vm, plan) = &plans[0];
    assert_eq!(plan.stage, FetchStage::Jwks);
    assert_eq!(plan.endpoint.cluster, "outbound|5556||dex");
    assert!(
        gateway.tick(NOW + SECOND).is_empty(),
        "lease held while in flight"
    );
    assert!(matches!(
        gateway.vms[4 - vm].state(&gateway.config, 0, NOW),
        KeyState::Pending
    ));

    let result = gateway.answer(*vm, Ok(rsa_jwks_json().as_bytes()), NOW + SECOND);
    assert_eq!(
        result,
        FetchResult::Succeeded {
            keys: 1,
            skipped: vec![]
        }
    );
    assert!(gateway.tick(NOW + 2 * SECOND).is_empty());
    assert!(gateway.ready_everywhere(NOW + 2 * SECOND));
    assert!(
        matches!(
            gateway.vms[0].state(&gateway.config, 1, NOW),
            KeyState::Ready(_)
        ),
        "inline"
    );
}

#[test]
fn keys_are_refreshed_once_per_interval_by_one_vm() {
    let mut gateway = Gateway::new(4, json!({"jwksRefreshInterval": "10s"}));
    let (vm, _) = gateway.tick(NOW).remove(0);
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW);
    let mut fetches = 0;
    for second in 1..=35 {
        let now = NOW + second * SECOND;
        for (vm, _) in gateway.tick(now) {
            fetches += 1;
            gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), now);
        }
    }
    assert_eq!(fetches, 3, "at 10 s, 20 s and 30 s");
}

#[test]
fn a_lease_whose_holder_died_expires() {
    let mut gateway = Gateway::new(2, json!({}));
    assert_eq!(gateway.tick(NOW).len(), 1);
    // The holder never answers. The lease lasts 2 x timeout + 1 s = 5 s.
    assert!(gateway.tick(NOW + 4 * SECOND).is_empty());
    assert_eq!(gateway.tick(NOW + 6 * SECOND).len(), 1);
}

#[test]
fn an_abandoned_fetch_hands_its_lease_on_at_once() {
    // Keys fetched, then a refresh due at 10 s (not before): only the lease
    // and the schedule decide who fetches.
    let mut gateway = Gateway::new(2, json!({"jwksRefreshInterval": "10s"}));
    let (vm, _) = gateway.tick(NOW).remove(0);
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW);
    let refresh = NOW + 10 * SECOND;
    let (holder, _) = gateway.tick(refresh).remove(0);
    // Its configuration is retired: its callout will never be answered.
    let mut retired = gateway.vms.remove(holder);
    retired.abandon_fetches(&gateway.config, &mut gateway.shared, refresh + SECOND);
    assert_eq!(
        gateway.tick(refresh + SECOND).len(),
        1,
        "the other VM fetches at its next tick, not when the lease would end"
    );
    // A lease another VM holds is not for the retired one to abandon.
    retired.abandon_fetches(&gateway.config, &mut gateway.shared, refresh + 2 * SECOND);
    gateway.vms.push(retired);
    assert!(gateway.tick(refresh + 2 * SECOND).is_empty());
}

#[test]
fn outages_keep_the_last_good_keys_and_back_off() {
    let mut gateway = Gateway::new(3, json!({"jwksRefreshInterval": "60s"}));
    let (vm, _) = gateway.tick(NOW).remove(0);
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW);
    let mut attempts = Vec::new();
    let mut now = NOW;
    for _ in 0..200 {
        now += Duration::from_millis(500);
        for (vm, _) in gateway.tick(now) {
            attempts.push((now - NOW).as_millis() as u64);
            let answer = if attempts.len() % 2 == 0 {
                Ok(b"<html>garbage</html>".as_slice())
            } else {
                Err("HTTP 500".to_string())
            };
            assert!(matches!(
                gateway.answer(vm, answer, now),
                FetchResult::Failed(_)
            ));
        }
    }
    // Refresh at 60 s fails; retries 1 s, 2 s, 4 s, 8 s, 16 s, 32 s later.
    assert_eq!(attempts, [60_000, 61_000, 63_000, 67_000, 75_000, 91_000]);
    assert!(gateway.ready_everywhere(now), "last good keys kept");
}

#[test]
fn keys_older_than_max_stale_are_dropped() {
    let mut gateway = Gateway::new(
        1,
        json!({"jwksRefreshInterval": "10s", "jwksMaxStale": "30s"}),
    );
    let (vm, _) = gateway.tick(NOW).remove(0);
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW);
    let mut now = NOW;
    for _ in 0..31 {
        now += SECOND;
        for (vm, _) in gateway.tick(now) {
            gateway.answer(vm, Err("down".into()), now);
        }
    }
    assert!(!gateway.ready_everywhere(now));
    assert!(gateway.vms[0].age(0, now).unwrap() >= Duration::from_secs(30));
}

#[test]
fn missing_keys_are_fetched_on_demand_at_most_once_a_second() {
    let mut gateway = Gateway::new(2, json!({"jwksRefreshInterval": "20m"}));
    // Two failures: the background retry is now 2 s away (at NOW + 3 s).
    for at in [NOW, NOW + SECOND] {
        let (vm, _) = gateway.tick(at).remove(0);
        gateway.answer(vm, Err("connection refused".into()), at);
    }
    let soon = NOW + Duration::from_millis(1500);
    gateway.tick(soon);
    assert!(matches!(
        gateway.vms[1].state(&gateway.config, 0, soon),
        KeyState::Unavailable
    ));
    let later = NOW + 2 * SECOND;
    assert!(matches!(
        gateway.vms[1].state(&gateway.config, 0, later),
        KeyState::Pending
    ));
    gateway.vms[1].want_fetch(0);
    let plans = gateway.tick(later);
    assert_eq!(
        plans.len(),
        1,
        "the waiting request's VM fetches before the backoff ends"
    );
    assert_eq!(plans[0].0, 1);
    gateway.answer(1, Ok(rsa_jwks_json().as_bytes()), later);
    gateway.tick(later);
    assert!(gateway.ready_everywhere(later));
}

#[test]
fn unknown_kid_refetches_are_rate_limited_across_vms() {
    let mut gateway = Gateway::new(4, json!({"jwksRefetchMinInterval": "30s"}));
    let (vm, _) = gateway.tick(NOW).remove(0);
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW);
    gateway.tick(NOW);
    let config = &gateway.config;
    assert!(!gateway.vms[2].may_refetch(config, 0, NOW + SECOND));
    let later = NOW + Duration::from_secs(31);
    assert!(gateway.vms[2].may_refetch(config, 0, later));
    for vm in &mut gateway.vms {
        vm.want_fetch(0);
    }
    let plans = gateway.tick(later);
    assert_eq!(plans.len(), 1, "every VM wants it, one fetches");
    assert!(plans[0].1.unknown_kid);
    let rotated = json!({"keys": [rsa_jwk("rsa-2", None)]}).to_string();
    let generation = gateway.vms[3].generation(0);
    gateway.answer(plans[0].0, Ok(rotated.as_bytes()), later);
    let report = gateway.vms[3].sync(&gateway.config, 0, &gateway.shared, later);
    assert!(report.generation_changed && report.installed == Some(1));
    assert!(gateway.vms[3].generation(0) > generation);
    let KeyState::Ready(keys) = gateway.vms[3].state(&gateway.config, 0, later) else {
        panic!("not ready")
    };
    assert!(keys.has_kid("rsa-2") && !keys.has_kid("rsa-1"));
    assert!(gateway.tick(later + SECOND).is_empty(), "demand was met");
}

#[test]
fn discovery_finds_the_jwks_then_fetches_it() {
    let config = Config::parse(
        json!({"jwtRules": [{"issuer": "https://login.example.com"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let mut shared = MemorySharedData::default();
    let mut vm = KeyStore::new(&config, 7);
    let plan = vm.begin_fetch(&config, 0, &mut shared, NOW).unwrap();
    assert_eq!(plan.stage, FetchStage::Discovery);
    assert_eq!(plan.endpoint.path, "/.well-known/openid-configuration");
    let document =
        br#"{"issuer":"https://login.example.com","jwks_uri":"https://keys.example.com/jwks"}"#;
    let FetchResult::Next(next) = vm.fetch_answered(&config, 0, Ok(document), &mut shared, NOW)
    else {
        panic!("no JWKS fetch after discovery")
    };
    assert_eq!(next.endpoint.cluster, "outbound|443||keys.example.com");
    let result = vm.fetch_answered(&config, 0, Ok(rsa_jwks_json().as_bytes()), &mut shared, NOW);
    assert!(matches!(result, FetchResult::Succeeded { keys: 1, .. }));

    // The next refresh goes straight to the discovered jwks_uri.
    let later = NOW + config.jwks_refresh_interval;
    let plan = vm.begin_fetch(&config, 0, &mut shared, later).unwrap();
    assert_eq!(plan.stage, FetchStage::Jwks);
}

#[test]
fn a_discovery_document_for_another_issuer_is_refused() {
    let config = Config::parse(
        json!({"jwtRules": [{"issuer": "https://login.example.com"}]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let mut shared = MemorySharedData::default();
    let mut vm = KeyStore::new(&config, 7);
    vm.begin_fetch(&config, 0, &mut shared, NOW).unwrap();
    let document =
        br#"{"issuer":"https://evil.example.com","jwks_uri":"https://evil.example.com/jwks"}"#;
    let result = vm.fetch_answered(&config, 0, Ok(document), &mut shared, NOW);
    assert!(matches!(result, FetchResult::Failed(why) if why.contains("evil")));
    assert!(matches!(vm.state(&config, 0, NOW), KeyState::Unavailable));
}

/// A token whose `kid` names no key of a fetched set that has keys without
/// `kid`: those keys are tried first. One of them verifies: passed, no
/// refetch (and remembered like any verified token). None does: `key_unknown`,
/// which waits for a refetch when one may start, like any unknown `kid`.
#[test]
fn kid_less_keys_are_tried_before_an_unknown_kid_refetches() {
    use crate::authz::subject_access_review::SubjectAccessReviewCache;
    use crate::authz::token_review::TokenReviewCache;
    use crate::outcome::{Denial, Outcome};
    use crate::pipeline::{decide, Caches, KeyWait};
    use crate::request::RequestView;
    use crate::testutil::{sign, sign_with_other_rsa_key, standard_claims};
    use crate::verified_token_cache::VerifiedTokenCache;

    let mut gateway = Gateway::new(1, json!({}));
    let (vm, _) = gateway.tick(NOW).remove(0);
    let mut kid_less = rsa_jwk("unused", Some("RS256"));
    kid_less.as_object_mut().unwrap().remove("kid");
    let document = json!({"keys": [kid_less]}).to_string();
    gateway.answer(vm, Ok(document.as_bytes()), NOW);

    let verified = VerifiedTokenCache::new(10);
    let (decisions, tokens) = (SubjectAccessReviewCache::new(0), TokenReviewCache::new(0));
    let caches = Caches {
        keys: &gateway.vms[0],
        verified_tokens: &verified,
        subject_access_reviews: &decisions,
        token_reviews: &tokens,
    };
    let request = |token: &str| {
        RequestView::from_pairs(vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/".into()),
            (":authority".into(), "kubeflow.example.com".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ])
    };
    let later = NOW + gateway.config.jwks_refetch_min_interval;
    let good = sign("RS256", Some("rotated"), &standard_claims());
    assert!(matches!(
        decide(
            &gateway.config,
            &caches,
            &request(&good),
            later,
            KeyWait::May
        ),
        Outcome::Allow {
            identity: Some(_),
            ..
        }
    ));
    assert!(verified
        .get(
            verified.digest(&good),
            later,
            gateway.config.clock_skew,
            |_| { gateway.vms[0].generation(0) }
        )
        .is_some());

    let forged = sign_with_other_rsa_key("rotated", &standard_claims());
    assert_eq!(
        decide(
            &gateway.config,
            &caches,
            &request(&forged),
            NOW,
            KeyWait::May
        ),
        Outcome::Deny(Denial::because(crate::cause::Cause::KidUnknown, true)),
        "just fetched: no refetch"
    );
    assert_eq!(
        decide(
            &gateway.config,
            &caches,
            &request(&forged),
            later,
            KeyWait::May
        ),
        Outcome::FetchKeys(0)
    );
    assert_eq!(
        decide(
            &gateway.config,
            &caches,
            &request(&forged),
            later,
            KeyWait::Spent
        ),
        Outcome::Deny(Denial::because(crate::cause::Cause::KidUnknown, true)),
        "after the refetch"
    );
}

/// Stands in for Envoy's `verify_signature` (never asked here).
#[derive(Debug)]
struct SomeHost;

impl crate::signature_host::SignatureHost for SomeHost {
    fn verify(
        &self,
        _: crate::signature_host::HashFunction,
        _: &[u8],
        _: &[u8],
        _: &[u8],
    ) -> Option<bool> {
        None
    }
}

static SOME_HOST: SomeHost = SomeHost;

#[test]
fn key_sets_get_the_signature_host_whichever_vm_fetched_them() {
    let mut gateway = Gateway::new(2, json!({}));
    gateway.config.use_signature_host(Some(&SOME_HOST));
    for vm in &mut gateway.vms {
        vm.use_signature_host(Some(&SOME_HOST));
    }
    let plans = gateway.tick(NOW);
    let (vm, _) = plans[0];
    gateway.answer(vm, Ok(rsa_jwks_json().as_bytes()), NOW + SECOND);
    gateway.tick(NOW + 2 * SECOND);
    // The fetcher's set (fetch_answered), the other VM's (sync), the inline one.
    for (vm, rule) in [(vm, 0), (1 - vm, 0), (0, 1)] {
        let KeyState::Ready(keys) = gateway.vms[vm].state(&gateway.config, rule, NOW + 2 * SECOND)
        else {
            panic!("vm {vm} rule {rule}: no keys");
        };
        assert!(keys.signature_host().is_some(), "vm {vm} rule {rule}");
    }
}
