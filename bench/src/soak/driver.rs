//! The load: `connections` threads, each with one keep-alive connection,
//! sending at a fixed combined rate (each thread on its own schedule; a late
//! thread sends at once rather than skipping). Every answer is checked against
//! the token it carried and kept as a [`Record`] for the verdict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kfauth_testkit::client::{Connection, Request, Reuse};
use kfauth_testkit::echo::Echoed;

use super::timeline::{pick, Pick, Timeline};
use super::tokens::{Generation, Valid};

/// What reached the upstream, compared with the identity the token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Not an upstream answer (refused, or a transport error).
    NotForwarded,
    /// Exactly one `kubeflow-userid` and one `kubeflow-groups`, the token's,
    /// and no `authorization`.
    Correct,
    /// Anything else: what the upstream saw.
    Wrong(String),
}

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Record {
    /// When it was sent, from the start of the load.
    pub sent: Duration,
    pub pick: Pick,
    /// 0 for a transport error.
    pub status: u16,
    /// kfauth's reason word for a refusal (or the transport error).
    pub reason: Option<String>,
    pub identity: Identity,
    /// Whether spoofed identity headers were sent along.
    pub spoofed: bool,
    /// From sending to the end of the answer.
    pub took: Duration,
}

/// Live counters for progress lines.
#[derive(Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub non_2xx: AtomicU64,
}

/// A running load.
pub struct Load {
    threads: Vec<JoinHandle<(Vec<Record>, u64)>>,
    pub progress: Arc<Progress>,
}

impl Load {
    /// Starts `connections` threads sending `rate` requests/s in total to
    /// `port` from `start` until `timeline.end`.
    pub fn start(
        port: u16,
        rate: f64,
        connections: usize,
        timeline: Timeline,
        generations: Arc<Vec<Generation>>,
        start: Instant,
    ) -> Load {
        let progress = Arc::new(Progress::default());
        let interval = Duration::from_secs_f64(connections as f64 / rate);
        let threads = (0..connections)
            .map(|thread| {
                let generations = Arc::clone(&generations);
                let progress = Arc::clone(&progress);
                let offset = interval.mul_f64(thread as f64 / connections as f64);
                std::thread::Builder::new()
                    .name(format!("soak-{thread}"))
                    .spawn(move || {
                        let mut connection = Connection::new(port);
                        let mut random = 0x9e37_79b9_7f4a_7c15_u64 ^ ((thread as u64 + 1) * 7919);
                        let mut records = Vec::new();
                        let mut next = offset;
                        while next < timeline.end {
                            let now = start.elapsed();
                            if next > now {
                                std::thread::sleep(next - now);
                            }
                            let sent = start.elapsed();
                            random = xorshift(random);
                            let record =
                                one_request(&mut connection, &generations, &timeline, sent, random);
                            progress.sent.fetch_add(1, Ordering::Relaxed);
                            if !(200..300).contains(&record.status) {
                                progress.non_2xx.fetch_add(1, Ordering::Relaxed);
                            }
                            records.push(record);
                            next += interval;
                        }
                        (records, connection.reconnects())
                    })
                    .expect("spawn load thread")
            })
            .collect();
        Load { threads, progress }
    }

    /// Waits for the end of the load: every record, and the reconnects.
    pub fn join(self) -> (Vec<Record>, u64) {
        let mut records = Vec::new();
        let mut reconnects = 0;
        for thread in self.threads {
            let (mut part, opened) = thread.join().expect("load thread");
            records.append(&mut part);
            reconnects += opened;
        }
        records.sort_by_key(|record| record.sent);
        (records, reconnects)
    }
}

fn xorshift(mut state: u64) -> u64 {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    state
}

fn one_request(
    connection: &mut Connection,
    generations: &[Generation],
    timeline: &Timeline,
    sent: Duration,
    random: u64,
) -> Record {
    let valid_count = generations.first().map_or(0, |g| g.valid.len());
    let invalid_count = generations.first().map_or(0, |g| g.invalid.len());
    let chosen = pick(timeline, sent, random >> 8, valid_count, invalid_count);
    let (token, expected): (&str, Option<&Valid>) = match chosen {
        Pick::Valid { generation, index } => {
            let valid = &generations[generation].valid[index];
            (&valid.token, Some(valid))
        }
        Pick::Retired { index } => {
            let valid = &generations[0].valid[index];
            (&valid.token, Some(valid))
        }
        Pick::Invalid { generation, index } => (&generations[generation].invalid[index].1, None),
    };
    let mut request = Request::new("GET", "127.0.0.1", "/soak").bearer(token);
    // A quarter of the requests also claim an identity of their own.
    let spoofed = random.is_multiple_of(4);
    if spoofed {
        request = request
            .header("kubeflow-userid", "admin@evil.example.com")
            .header("Kubeflow-Groups", "system:masters");
    }
    let began = Instant::now();
    let (status, reason, identity) = match connection.exchange(&request, Reuse::KeepAlive) {
        Err(why) => (0, Some(why), Identity::NotForwarded),
        Ok(answer) if (200..300).contains(&answer.status) => {
            (answer.status, None, check_identity(&answer.body, expected))
        }
        Ok(answer) => {
            let reason = serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|body| body["reason"].as_str().map(str::to_string))
                .or_else(|| Some(answer.body.chars().take(60).collect()));
            (answer.status, reason, Identity::NotForwarded)
        }
    };
    Record {
        sent,
        pick: chosen,
        status,
        reason,
        identity,
        spoofed,
        took: began.elapsed(),
    }
}

/// Compares what the upstream received with the identity the token names.
fn check_identity(body: &str, expected: Option<&Valid>) -> Identity {
    let Some(echoed) = Echoed::parse(body) else {
        return Identity::Wrong(format!(
            "not an upstream answer: {}",
            body.chars().take(80).collect::<String>()
        ));
    };
    let users = echoed.header_values("kubeflow-userid");
    let groups = echoed.header_values("kubeflow-groups");
    let authorization = echoed.header_values("authorization");
    let correct = expected.is_some_and(|valid| {
        users == [valid.email.as_str()]
            && groups == [valid.groups.as_str()]
            && authorization.is_empty()
    });
    if correct {
        Identity::Correct
    } else {
        Identity::Wrong(format!(
            "userid {users:?} groups {groups:?} authorization forwarded: {}",
            !authorization.is_empty()
        ))
    }
}
