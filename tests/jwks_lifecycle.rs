//! Keys that stay right, in an Envoy with four workers (plus the VM on its
//! main thread), all sharing one fetched key set per issuer:
//! - the JWKS server is down when Envoy starts: a token gets 503
//!   jwks_unavailable with retry-after; once the server is up, a request
//!   passes within about a second (bounded at 10 s), then on every worker;
//! - rotation: the IdP replaces its key set (new kids, old ones gone); once
//!   `jwksRefetchMinInterval` has passed since the last fetch, the first token
//!   signed with a new key passes, on every worker, at the cost of one fetch;
//!   once the new set has reached every worker (a tick), a token signed by a
//!   removed key, or with a kid in neither set, gets 401 key_unknown;
//! - a flood of 200 tokens with random unknown kids: each gets 401
//!   key_unknown, and the JWKS endpoint sees at most 2 more fetches
//!   (`jwksRefetchMinInterval: 30s`);
//! - after a good fetch the JWKS endpoint fails (500), goes away (connection
//!   refused), or serves garbage (`<html>`, `{"keys":[]}`), with
//!   `jwksRefreshInterval: 1s`: tokens keep passing on every worker for
//!   several refresh periods and `kfauth.jwks.fetch_failed` rises;
//! - keys older than `jwksMaxStale` are dropped: with the endpoint failing,
//!   tokens eventually get 503 jwks_unavailable, and pass again once it is back;
//! - one fetch per refresh across four workers: Envoy's start costs one
//!   fetch, and with `jwksRefreshInterval: 2s` the endpoint sees about one
//!   fetch per period, not one per VM.

// End-to-end against a real Envoy: native only (the testkit is not built for wasm).
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use kfauth_testkit::plugin_config::{claims, uri_rule, with_rules, ISSUER};
use kfauth_testkit::{expect, wait, Alg, Gateway, HttpResponse, Idp, JwksMode, JwksServer};
use serde_json::{json, Value};

/// Worker threads: several VMs that must share one key set.
const WORKERS: u32 = 4;
/// Bound on waits for something that should take about a second.
const PATIENCE: Duration = Duration::from_secs(10);

fn config(jwks: &JwksServer, extra: Value) -> Value {
    with_rules(vec![uri_rule(ISSUER, &jwks.uri())], extra)
}

fn start(config: Value, jwks: &JwksServer) -> Gateway {
    let port = jwks.port();
    Gateway::start_with(config, |s| {
        s.with_jwks_cluster(port).with_concurrency(WORKERS)
    })
}

fn token(idp: &Idp, alg: Alg) -> String {
    idp.sign(alg, &claims("alice@example.com", &["a"]))
}

/// One request with `token`, on a fresh connection (so on any worker).
fn send(gateway: &Gateway, token: &str) -> HttpResponse {
    gateway.get_bearer_fresh("/echo", token)
}

/// At least `count` requests with `token`, each on a fresh connection; every
/// one must pass. They go on (up to 8 × `count`) until Envoy's per-worker
/// listener statistics show that several workers were reached: the kernel
/// spreads connections by hash, and a short run can land on one worker only.
fn all_workers_pass(gateway: &Gateway, token: &str, count: usize, what: &str) {
    let before = gateway.stats().connections_per_worker();
    let mut reached = 0;
    let mut after = before.clone();
    for i in 0..count.saturating_mul(8) {
        let response = send(gateway, token);
        assert_eq!(
            response.status, 200,
            "{what}: request {i} got {} {:?}",
            response.status, response.body
        );
        if i + 1 < count {
            continue;
        }
        after = gateway.stats().connections_per_worker();
        assert_eq!(after.len(), WORKERS as usize, "per-worker listener stats");
        reached = after
            .iter()
            .zip(before.iter().chain(std::iter::repeat(&0)))
            .filter(|(a, b)| a > b)
            .count();
        if reached >= 2 {
            return;
        }
    }
    panic!(
        "{what}: {} fresh connections reached only {reached} worker(s): {before:?} -> {after:?}",
        count.saturating_mul(8)
    );
}

/// Sends `token` every 150 ms for `duration` (fresh connections); each must pass.
fn keeps_passing(gateway: &Gateway, token: &str, duration: Duration, what: &str) {
    keeps_passing_until(gateway, token, duration, what, || true);
}

/// [`keeps_passing`] for at least `duration`, then on until `seen` holds
/// (what the phase is waiting to observe, such as refreshes reaching the
/// JWKS server: a loaded machine is slower to get there), `PATIENCE` at most.
fn keeps_passing_until(
    gateway: &Gateway,
    token: &str,
    duration: Duration,
    what: &str,
    mut seen: impl FnMut() -> bool,
) {
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < duration || (!seen() && start.elapsed() < duration + PATIENCE) {
        let response = send(gateway, token);
        assert_eq!(
            response.status,
            200,
            "{what}: a valid token failed {:?} into the phase, after {sent} passed: {:?}",
            start.elapsed(),
            response.body
        );
        sent += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Polls `check` until it holds or `PATIENCE` runs out; returns how long it
/// took, or `None`.
fn within_patience(check: impl FnMut() -> bool) -> Option<Duration> {
    wait::within(PATIENCE, check)
}

/// Whether fresh connections, sent until every worker has taken at least one
/// (at most 16 per worker), all answer `status`; an answer that is neither
/// `status` nor `otherwise` fails the test. A run must reach every worker:
/// each VM picks up a new key set on its own tick, and a run that missed the
/// last one to do so would call the change done too early.
fn a_run_answers(
    gateway: &Gateway,
    token: &str,
    status: u16,
    otherwise: impl Fn(&HttpResponse),
) -> bool {
    let before = gateway.stats().connections_per_worker();
    for _ in 0..16 * WORKERS {
        let response = send(gateway, token);
        if response.status != status {
            otherwise(&response);
            return false;
        }
        let after = gateway.stats().connections_per_worker();
        let reached = after
            .iter()
            .zip(before.iter().chain(std::iter::repeat(&0)))
            .filter(|(a, b)| a > b)
            .count();
        if reached == WORKERS as usize {
            return true;
        }
    }
    false
}

fn counter(gateway: &Gateway, name: &str) -> u64 {
    gateway.stats().counter(name)
}

#[test]
fn keys_arrive_once_the_jwks_server_comes_up() {
    let mut jwks = JwksServer::start(&Idp::shared().jwks_json());
    jwks.stop();
    let gateway = start(config(&jwks, json!({})), &jwks);
    let t = token(Idp::shared(), Alg::RS256);

    for _ in 0..8 {
        expect::unavailable(&send(&gateway, &t), "jwks_unavailable");
    }
    // Without a token nothing needs the keys.
    expect::allowed(&gateway.get("/echo", &[]));

    jwks.restart();
    let mut not_yet = 0;
    let first = within_patience(|| {
        let response = send(&gateway, &t);
        if response.status != 200 {
            expect::unavailable(&response, "jwks_unavailable");
            not_yet += 1;
        }
        response.status == 200
    });
    let first = first.unwrap_or_else(|| {
        panic!(
            "no request passed within {PATIENCE:?} of the JWKS server coming up ({} fetches reached it)",
            jwks.hits()
        )
    });
    eprintln!(
        "first 200 {first:?} after the JWKS server came up ({not_yet} 503s before; {} fetches)",
        jwks.hits()
    );

    // The other workers read the shared keys on their tick: wait until a
    // run of fresh connections all pass.
    let spread = within_patience(|| {
        a_run_answers(&gateway, &t, 200, |r| {
            expect::unavailable(r, "jwks_unavailable");
        })
    })
    .unwrap_or_else(|| panic!("the keys did not reach every worker within {PATIENCE:?}"));
    eprintln!("every worker passed {spread:?} after the first 200");
    all_workers_pass(&gateway, &t, 20, "after recovery");
    all_workers_pass(
        &gateway,
        &token(Idp::shared(), Alg::ES256),
        8,
        "after recovery (ES256)",
    );
    // One VM fetched for every worker.
    let fetched = jwks.hits();
    eprintln!("JWKS fetches after recovery: {fetched}");
    assert!(
        fetched <= 2,
        "{fetched} JWKS fetches once the server was up, with {WORKERS} workers (one VM should fetch for all)"
    );
}

#[test]
fn a_rotated_key_passes_on_first_use() {
    let old_idp = Idp::shared();
    let new_idp = Idp::shared_second();
    let jwks = JwksServer::start(&old_idp.jwks_json());
    let gateway = start(
        config(&jwks, json!({"jwksRefetchMinInterval": "1s"})),
        &jwks,
    );
    expect::allowed(&send(&gateway, &token(old_idp, Alg::RS256)));

    // The refetch rate limit (1s) counts from the last fetch: let it lapse
    // (with a margin for the VM's clock, which notes the fetch after the
    // JWKS server saw it), then rotate: new kids only.
    let last_fetch = *jwks
        .hit_times()
        .last()
        .expect("Envoy's start fetched the keys");
    let lapsed = last_fetch + Duration::from_millis(1200);
    std::thread::sleep(lapsed.saturating_duration_since(Instant::now()));
    jwks.set_mode(JwksMode::Serve(new_idp.jwks_json()));
    let before = jwks.hits();
    let seen = expect::allowed(&send(&gateway, &token(new_idp, Alg::RS256)));
    assert_eq!(seen.header("kubeflow-userid"), Some("alice@example.com"));
    assert!(
        jwks.hits() > before,
        "the unknown kid caused a refetch ({} fetches before, {} after)",
        before,
        jwks.hits()
    );
    // The other new key came with the same set; every worker has it.
    all_workers_pass(&gateway, &token(new_idp, Alg::ES256), 12, "rotated keys");
    let fetched = jwks.hits() - before;
    assert!(
        fetched <= 2,
        "the rotation cost {fetched} JWKS fetches with {WORKERS} workers (one VM should fetch for all)"
    );

    // The removed key no longer verifies anything, on any worker, once the
    // new set has reached them all (each VM reads the shared set on its
    // tick): wait until a run of fresh connections all refuse it.
    let old = token(old_idp, Alg::RS256);
    within_patience(|| {
        a_run_answers(&gateway, &old, 401, |r| {
            expect::allowed(r);
        })
    })
    .unwrap_or_else(|| panic!("the removed key still verifies {PATIENCE:?} after the rotation"));
    for _ in 0..12 {
        expect::rejected(&send(&gateway, &old), "key_unknown");
    }
    // A kid in neither set.
    let stranger = new_idp.sign_with_kid(
        Alg::RS256,
        "never-published",
        &claims("alice@example.com", &[]),
    );
    expect::rejected(&send(&gateway, &stranger), "key_unknown");
    assert!(
        counter(&gateway, "kfauth.jwks.refetch_unknown_kid") >= 1,
        "refetch_unknown_kid counted the rotation refetch: {:?}",
        gateway.stats().containing("kfauth")
    );
}

#[test]
fn an_unknown_kid_flood_costs_at_most_one_refetch() {
    const TOKENS: usize = 200;
    const THREADS: usize = 4;
    let idp = Idp::shared();
    let jwks = JwksServer::start(&idp.jwks_json());
    let gateway = start(
        config(&jwks, json!({"jwksRefetchMinInterval": "30s"})),
        &jwks,
    );
    expect::allowed(&send(&gateway, &token(idp, Alg::RS256)));

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let c = claims("mallory@example.com", &[]);
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            let kid = format!(
                "{:08x}-{i:03}",
                nanos.wrapping_mul(2_654_435_761) ^ i as u32
            );
            idp.sign_with_kid(Alg::ES256, &kid, &c)
        })
        .collect();

    let before = jwks.hits();
    let refetches_before = counter(&gateway, "kfauth.jwks.refetch_unknown_kid");
    let ended = || {
        counter(&gateway, "kfauth.jwks.fetch_success")
            + counter(&gateway, "kfauth.jwks.fetch_failed")
    };
    let ended_before = ended();
    let started = Instant::now();
    let answers: Vec<(HttpResponse, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .chunks(TOKENS / THREADS)
            .map(|chunk| {
                let gateway = &gateway;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| {
                            let sent = Instant::now();
                            (send(gateway, t), sent.elapsed())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = started.elapsed();
    assert_eq!(answers.len(), TOKENS);
    for (response, _) in &answers {
        expect::rejected(response, "key_unknown");
    }
    let mut latencies: Vec<Duration> = answers.iter().map(|(_, d)| *d).collect();
    latencies.sort_unstable();
    // A refetch started by the last requests may still be under way: count
    // once every refetch kfauth started has ended (succeeded or failed).
    let refetches = || counter(&gateway, "kfauth.jwks.refetch_unknown_kid") - refetches_before;
    within_patience(|| ended() - ended_before >= refetches()).unwrap_or_else(|| {
        panic!(
            "{} refetches started, {} ended",
            refetches(),
            ended() - ended_before
        )
    });
    let fetched = jwks.hits() - before;
    let refetches = refetches();
    eprintln!(
        "flood of {TOKENS} unknown kids in {took:?} (latency median {:?}, max {:?}): {fetched} JWKS fetches, refetch_unknown_kid +{refetches}",
        latencies[TOKENS / 2],
        latencies[TOKENS - 1]
    );
    assert!(
        fetched <= 2,
        "{TOKENS} unknown kids within jwksRefetchMinInterval 30s caused {fetched} JWKS fetches"
    );
    expect::allowed(&send(&gateway, &token(idp, Alg::ES256)));
}

#[test]
fn outages_and_garbage_keep_the_last_good_keys() {
    let idp = Idp::shared();
    let mut jwks = JwksServer::start(&idp.jwks_json());
    let gateway = start(config(&jwks, json!({"jwksRefreshInterval": "1s"})), &jwks);
    let t = token(idp, Alg::RS256);
    expect::allowed(&send(&gateway, &t));
    let phase = Duration::from_millis(3500);

    let failed = counter(&gateway, "kfauth.jwks.fetch_failed");
    let hits = jwks.hits();
    jwks.set_mode(JwksMode::Fail);
    keeps_passing_until(&gateway, &t, phase, "JWKS answering 500", || {
        jwks.hits() >= hits + 2 && counter(&gateway, "kfauth.jwks.fetch_failed") > failed
    });
    assert!(
        jwks.hits() >= hits + 2,
        "refreshes kept trying during the 500s ({} fetches)",
        jwks.hits() - hits
    );
    let failed_now = counter(&gateway, "kfauth.jwks.fetch_failed");
    assert!(
        failed_now > failed,
        "fetch_failed rose during the 500s: {failed} -> {failed_now}; {:?}",
        gateway.stats().containing("kfauth")
    );

    jwks.stop();
    keeps_passing_until(&gateway, &t, phase, "JWKS server gone", || {
        counter(&gateway, "kfauth.jwks.fetch_failed") > failed_now
    });
    let failed_later = counter(&gateway, "kfauth.jwks.fetch_failed");
    assert!(
        failed_later > failed_now,
        "fetch_failed rose while the server was gone: {failed_now} -> {failed_later}"
    );

    for (garbage, what) in [
        (JwksMode::Garbage, "JWKS serving <html>"),
        (
            JwksMode::Serve(r#"{"keys":[]}"#.into()),
            "JWKS serving no keys",
        ),
    ] {
        jwks.set_mode(garbage);
        jwks.restart();
        let hits = jwks.hits();
        keeps_passing_until(&gateway, &t, phase, what, || jwks.hits() >= hits + 2);
        assert!(
            jwks.hits() >= hits + 2,
            "{what}: refreshes kept fetching ({} fetches)",
            jwks.hits() - hits
        );
        jwks.stop();
    }
    all_workers_pass(&gateway, &t, 12, "after the outages");
    all_workers_pass(
        &gateway,
        &token(idp, Alg::ES256),
        4,
        "after the outages (ES256)",
    );
}

#[test]
fn keys_older_than_max_stale_are_dropped() {
    let idp = Idp::shared();
    let jwks = JwksServer::start(&idp.jwks_json());
    let gateway = start(
        config(
            &jwks,
            json!({"jwksRefreshInterval": "1s", "jwksMaxStale": "3s"}),
        ),
        &jwks,
    );
    let t = token(idp, Alg::RS256);
    expect::allowed(&send(&gateway, &t));

    jwks.set_mode(JwksMode::Fail);
    let failing = Instant::now();
    let dropped = within_patience(|| send(&gateway, &t).status == 503).unwrap_or_else(|| {
        panic!("keys older than jwksMaxStale 3s still verify {PATIENCE:?} into the outage")
    });
    eprintln!("keys dropped {dropped:?} into the outage (jwksMaxStale 3s)");
    assert!(
        failing.elapsed() >= Duration::from_secs(2),
        "keys were dropped {:?} into the outage, before they were 3 s old",
        failing.elapsed()
    );
    expect::unavailable(&send(&gateway, &t), "jwks_unavailable");

    jwks.set_mode(JwksMode::Serve(idp.jwks_json()));
    within_patience(|| send(&gateway, &t).status == 200)
        .unwrap_or_else(|| panic!("no recovery within {PATIENCE:?} of the JWKS coming back"));
    all_workers_pass(&gateway, &t, 12, "after the stale keys were replaced");
}

/// Sizes of the bursts in `times` (hits closer than 400 ms to the previous
/// one belong to its burst), and the gaps between burst starts.
fn bursts(times: &[Instant]) -> (Vec<usize>, Vec<Duration>) {
    let mut sizes: Vec<usize> = Vec::new();
    let mut starts: Vec<Instant> = Vec::new();
    let mut previous: Option<Instant> = None;
    for &time in times {
        match previous {
            Some(p) if time.duration_since(p) < Duration::from_millis(400) => {
                if let Some(last) = sizes.last_mut() {
                    *last += 1;
                }
            }
            _ => {
                sizes.push(1);
                starts.push(time);
            }
        }
        previous = Some(time);
    }
    let gaps = starts
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    (sizes, gaps)
}

#[test]
fn one_fetch_per_refresh_across_four_workers() {
    let idp = Idp::shared();
    let jwks = JwksServer::start(&idp.jwks_json());
    let gateway = start(config(&jwks, json!({"jwksRefreshInterval": "2s"})), &jwks);
    let t = token(idp, Alg::ES256);
    expect::allowed(&send(&gateway, &t));

    // Refreshes: 10 s of traffic on every worker, counted from a second
    // after the first fetch (the first refresh is 2 s away).
    let first = jwks.hit_times()[0];
    let window = Duration::from_secs(10);
    let periods = 5;
    let from = Instant::now().max(first + Duration::from_secs(1));
    keeps_passing(&gateway, &t, window, "during refreshes");
    let to = Instant::now();

    // Startup: every hit within a second of the first is the start's fetch.
    let startup = jwks
        .hit_times()
        .iter()
        .filter(|t| t.duration_since(first) < Duration::from_secs(1))
        .count();
    eprintln!("startup: {startup} JWKS fetch(es) with {WORKERS} workers");
    assert!(
        startup <= 2,
        "Envoy's start fetched the JWKS {startup} times with {WORKERS} workers (one VM should fetch for all)"
    );
    let in_window: Vec<Instant> = jwks
        .hit_times()
        .into_iter()
        .filter(|t| *t >= from && *t < to)
        .collect();
    let (sizes, gaps) = bursts(&in_window);
    eprintln!(
        "refreshes: {} JWKS fetches in {window:?} ({periods} periods of 2s) with {WORKERS} workers; bursts {sizes:?}, gaps {gaps:?}",
        in_window.len()
    );
    assert!(
        in_window.len() <= periods + 2,
        "{} JWKS fetches in {periods} refresh periods with {WORKERS} workers: bursts {sizes:?}",
        in_window.len()
    );
    assert!(
        in_window.len() >= periods - 1,
        "only {} JWKS fetches in {periods} refresh periods: is jwksRefreshInterval honoured?",
        in_window.len()
    );
    let workers = gateway.stats().connections_per_worker();
    assert!(
        workers.iter().filter(|&&c| c > 0).count() >= 2,
        "the traffic reached several workers: {workers:?}"
    );
}
