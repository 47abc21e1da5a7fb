//! `make soak`: Envoy (2 workers) with the release kfauth.wasm in front of an
//! echo upstream, keys from a JWKS server standing in for the identity
//! provider, a fixed request rate for `SOAK_SECONDS`, a key rotation, a key
//! removal and an IdP outage with a rotation inside it. Prints the figures
//! and PASS or FAIL (exit code 1). See the README, "Soak test".
//!
//! Environment: `SOAK_SECONDS` (600), `SOAK_RATE` requests/s (300),
//! `SOAK_OUTAGE_SECONDS` (60, at most a quarter of the run), `SOAK_USERS`
//! (500), `SOAK_CONNECTIONS` (8).

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kfauth_bench::soak::driver::Load;
use kfauth_bench::soak::rss::{envoy_child_pid, rss_mib};
use kfauth_bench::soak::timeline::Timeline;
use kfauth_bench::soak::tokens::{jwks, Generation, AUDIENCE, ISSUER};
use kfauth_bench::soak::verdict::{tally, Observed, PROPAGATION, REFETCH_MIN_INTERVAL};
use kfauth_testkit::envoy::Envoy;
use kfauth_testkit::jwks_server::{JwksMode, JwksServer};
use kfauth_testkit::EchoServer;
use kfauth_testkit::EnvoySettings;
use serde_json::json;

/// Largest allowed change of Envoy's RSS from the start (after warm-up).
const RSS_TOLERANCE: f64 = 0.10;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|value| *value > 0)
        .unwrap_or(default)
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Sleeps until `offset` after `start`, printing a progress line and
/// sampling RSS every 30 s on the way.
fn wait_until(
    start: Instant,
    offset: Duration,
    load: &Load,
    pid: u32,
    samples: &mut Vec<(f64, f64)>,
) {
    loop {
        let now = start.elapsed();
        if now >= offset {
            return;
        }
        let next_sample = Duration::from_secs((now.as_secs() / 30 + 1) * 30);
        if next_sample <= offset {
            std::thread::sleep(next_sample - now);
            let rss = rss_mib(pid).unwrap_or(f64::NAN);
            samples.push((secs(start.elapsed()), rss));
            eprintln!(
                "  t={:>4.0}s sent {} non-2xx {} rss {rss:.1} MiB",
                secs(start.elapsed()),
                load.progress.sent.load(Ordering::Relaxed),
                load.progress.non_2xx.load(Ordering::Relaxed)
            );
        } else {
            std::thread::sleep(offset - now);
        }
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted
        .get(index)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

fn main() -> ExitCode {
    let seconds = setting("SOAK_SECONDS", 600);
    let rate = setting("SOAK_RATE", 300) as f64;
    let outage_seconds = setting("SOAK_OUTAGE_SECONDS", 60);
    let users = setting("SOAK_USERS", 500) as usize;
    let connections = setting("SOAK_CONNECTIONS", 8) as usize;
    let timeline = Timeline::new(seconds, outage_seconds);

    eprintln!("minting 3 key generations x {users} users");
    let lifetime = seconds + 3600;
    let generations: Arc<Vec<Generation>> = Arc::new(
        (1..=3)
            .map(|number| Generation::mint(number, users, lifetime))
            .collect(),
    );
    let [g1, g2, g3] = [&generations[0], &generations[1], &generations[2]];

    let mut idp = JwksServer::start(&jwks(&[g1]));
    let echo = EchoServer::start();
    let plugin_config = json!({
        "jwtRules": [{
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "jwksUri": idp.uri(),
            "outputClaimToHeaders": [
                {"header": "kubeflow-userid", "claim": "email"},
                {"header": "kubeflow-groups", "claim": "groups"},
            ],
        }],
        "requireJwt": true,
        // kfauth's default, stated because the verdict depends on it.
        "jwksRefetchMinInterval": format!("{}s", REFETCH_MIN_INTERVAL.as_secs()),
    });
    let settings = EnvoySettings::for_test(plugin_config, echo.port())
        .with_jwks_cluster(idp.port())
        .with_concurrency(2);
    let envoy = Envoy::start(&settings);
    let Some(pid) = envoy_child_pid() else {
        eprintln!("cannot find the Envoy process");
        return ExitCode::FAILURE;
    };

    // Fail fast on a broken setup: one token of each kind, on fresh connections.
    for valid in g1.valid.iter().take(4) {
        let answer = envoy.get_bearer_fresh("/", &valid.token);
        if answer.status != 200 {
            eprintln!("setup: a valid token got {} {}", answer.status, answer.body);
            return ExitCode::FAILURE;
        }
    }
    for (kind, token) in &g1.invalid {
        let answer = envoy.get_bearer_fresh("/", token);
        if answer.status == 200 {
            eprintln!("setup: an invalid token ({kind:?}) passed");
            return ExitCode::FAILURE;
        }
    }

    eprintln!(
        "soak: {seconds}s at {rate} req/s over {connections} connections; Envoy pid {pid}, 2 workers; timeline {timeline:?}"
    );
    let start = Instant::now();
    let load = Load::start(
        envoy.port(),
        rate,
        connections,
        timeline,
        Arc::clone(&generations),
        start,
    );
    let mut samples = Vec::new();
    let mut observed = Observed::default();

    wait_until(start, timeline.warmup_end, &load, pid, &mut samples);
    let rss_start = rss_mib(pid).unwrap_or(f64::NAN);
    eprintln!(
        "  t={:>4.0}s warm-up over: rss {rss_start:.1} MiB",
        secs(start.elapsed())
    );

    wait_until(start, timeline.rotate, &load, pid, &mut samples);
    idp.set_mode(JwksMode::Serve(jwks(&[g1, g2])));
    observed.rotated = start.elapsed();
    eprintln!(
        "  t={:>4.0}s rotation: rsa-g2/ec-g2 published beside g1; new tokens use g2",
        secs(start.elapsed())
    );

    wait_until(start, timeline.remove_old, &load, pid, &mut samples);
    idp.set_mode(JwksMode::Serve(jwks(&[g2])));
    observed.removed_old = start.elapsed();
    eprintln!(
        "  t={:>4.0}s g1 keys removed from the JWKS",
        secs(observed.removed_old)
    );

    wait_until(start, timeline.outage_start, &load, pid, &mut samples);
    let rss_middle = rss_mib(pid).unwrap_or(f64::NAN);
    idp.stop();
    observed.outage_start = start.elapsed();
    eprintln!(
        "  t={:>4.0}s IdP down (rss {rss_middle:.1} MiB)",
        secs(observed.outage_start)
    );

    wait_until(start, timeline.rotate_in_outage, &load, pid, &mut samples);
    idp.set_mode(JwksMode::Serve(jwks(&[g2, g3])));
    observed.rotated_in_outage = start.elapsed();
    eprintln!(
        "  t={:>4.0}s the IdP, still down, rotates in g3; new tokens use g3",
        secs(observed.rotated_in_outage)
    );

    wait_until(start, timeline.outage_end, &load, pid, &mut samples);
    idp.restart();
    observed.outage_end = start.elapsed();
    eprintln!(
        "  t={:>4.0}s IdP back, serving g2+g3",
        secs(observed.outage_end)
    );

    wait_until(start, timeline.end, &load, pid, &mut samples);
    let (records, reconnects) = load.join();
    let rss_end = rss_mib(pid).unwrap_or(f64::NAN);
    let elapsed = start.elapsed();
    observed.jwks_hits = idp
        .hit_times()
        .into_iter()
        .map(|hit| hit.saturating_duration_since(start))
        .collect();
    let stats = envoy.stats();
    let logs = envoy.logs();
    drop(envoy);

    let invalid_kinds: Vec<_> = g1.invalid.iter().map(|(kind, _)| *kind).collect();
    let tally = tally(&records, &observed, &invalid_kinds);
    let mut took: Vec<Duration> = records.iter().map(|record| record.took).collect();
    took.sort_unstable();
    let traps: Vec<&str> = logs
        .lines()
        .filter(|line| {
            line.contains("panicked at")
                || line.contains("Uncaught RuntimeError")
                || (line.contains("Function: proxy_") && line.contains(" failed: "))
        })
        .collect();
    let change = |rss: f64| (rss - rss_start) / rss_start;
    let rss_flat =
        change(rss_middle).abs() <= RSS_TOLERANCE && change(rss_end).abs() <= RSS_TOLERANCE;

    println!("\n== kfauth soak: {seconds} s at {rate:.0} req/s, {connections} keep-alive connections, Envoy --concurrency 2 ==");
    println!(
        "events (s from start): warm-up end {:.0}, rotation {:.0}, g1 removed {:.1}, IdP down {:.1}, g3 rotated in {:.1}, IdP back {:.1}, end {:.1}",
        secs(timeline.warmup_end),
        secs(timeline.rotate),
        secs(observed.removed_old),
        secs(observed.outage_start),
        secs(observed.rotated_in_outage),
        secs(observed.outage_end),
        secs(elapsed)
    );
    let hits: Vec<String> = observed
        .jwks_hits
        .iter()
        .map(|hit| format!("{:.1}", secs(*hit)))
        .collect();
    println!("JWKS fetches seen by the IdP at (s): {}", hits.join(" "));
    println!(
        "requests: {} ({:.1} req/s achieved), latency p50 {:.2} ms p99 {:.2} ms max {:.1} ms, transport errors {}, reconnects {reconnects}, spoofed identity headers on {}",
        tally.total,
        tally.total as f64 / secs(elapsed),
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        percentile(&took, 1.0),
        tally.transport_errors,
        tally.spoofed
    );
    println!(
        "valid tokens: {} sent, {} passed",
        tally.valid, tally.valid_passed
    );
    println!(
        "  non-2xx outside the outage policy: {} {:?}",
        tally.valid_refused_total(),
        tally.valid_refused
    );
    for line in &tally.valid_refused_examples {
        println!("    {line}");
    }
    println!(
        "  non-2xx the refetch rate limit allows (g2 tokens, key rotated in at t={:.1}s, sent before kfauth may refetch ({}s after its last fetch attempt) or does + {}s): {} {:?}",
        secs(observed.rotated),
        REFETCH_MIN_INTERVAL.as_secs(),
        PROPAGATION.as_secs(),
        tally.rotation_refused_allowed_total(),
        tally.rotation_refused_allowed
    );
    println!(
        "  g2 tokens: {} sent, {} passed; must pass from t={:.1}s",
        tally.rotated_key_sent,
        tally.rotated_key_passed,
        secs(observed.rotated_key_known_from())
    );
    println!(
        "  non-2xx the outage policy allows (g3 tokens, key rotated in during the outage, sent before kfauth's first fetch after the IdP returned, at most {}s after it, + {}s): {} {:?}",
        REFETCH_MIN_INTERVAL.as_secs(),
        PROPAGATION.as_secs(),
        tally.valid_refused_allowed_total(),
        tally.valid_refused_allowed
    );
    println!(
        "  g3 tokens: {} sent, {} passed; must pass from t={:.1}s",
        tally.outage_key_sent,
        tally.outage_key_passed,
        secs(observed.outage_key_known_from())
    );
    println!("wrong identities: {}", tally.wrong_identities);
    for line in &tally.wrong_identity_examples {
        println!("    {line}");
    }
    println!(
        "removed-key (g1) tokens after removal: {} sent, {} passed before kfauth refetched (refused from t={}), {} refused",
        tally.retired,
        tally.retired_passed_before_refetch,
        observed
            .retired_refused_from()
            .map_or("never".to_string(), |t| format!("{:.1}s", secs(t))),
        tally.retired_refused
    );
    println!(
        "invalid tokens: {} sent, accepted {}",
        tally.invalid, tally.invalid_accepted
    );
    for line in &tally.invalid_accepted_examples {
        println!("    {line}");
    }
    for (answer, count) in &tally.invalid_answers {
        println!("  {answer}: {count}");
    }
    println!(
        "kfauth counters: jwt.allowed {} jwt.denied {} jwks.fetch_success {} jwks.fetch_failed {} jwks.refetch_unknown_kid {}",
        stats.counter("kfauth.jwt.allowed"),
        stats.counter("kfauth.jwt.denied"),
        stats.counter("kfauth.jwks.fetch_success"),
        stats.counter("kfauth.jwks.fetch_failed"),
        stats.counter("kfauth.jwks.refetch_unknown_kid"),
    );
    let sampled: Vec<f64> = samples.iter().map(|(_, rss)| *rss).collect();
    println!(
        "Envoy RSS MiB: start {rss_start:.1}, middle {rss_middle:.1} ({:+.1}%), end {rss_end:.1} ({:+.1}%); every 30 s: {}",
        change(rss_middle) * 100.0,
        change(rss_end) * 100.0,
        sampled
            .iter()
            .map(|rss| format!("{rss:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("Wasm VM traps in Envoy's log: {}", traps.len());
    for line in traps.iter().take(5) {
        println!("    {line}");
    }

    let mut failures = Vec::new();
    if tally.valid_refused_total() > 0 {
        failures.push("valid tokens refused outside the outage policy");
    }
    if tally.wrong_identities > 0 {
        failures.push("wrong identities upstream");
    }
    if tally.invalid_accepted > 0 {
        failures.push("invalid tokens accepted");
    }
    if !rss_flat {
        failures.push("Envoy RSS not flat within 10%");
    }
    if !traps.is_empty() {
        failures.push("Wasm VM traps");
    }
    if failures.is_empty() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        println!("FAIL: {}", failures.join("; "));
        ExitCode::FAILURE
    }
}
