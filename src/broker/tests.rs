//! The broker driven by a fake clock and an in-memory shared-data store:
//! coalescing, resume order, time-outs, clean-up and failure modes, for each
//! kind of callout, with no Envoy.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::access::Access;
use crate::keystore::shared::{MemorySharedData, WriteError};
use crate::testutil::{rsa_jwk, rsa_jwks_json, sign, standard_claims, DEX, NOW};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

/// One shared-data store seen by several brokers (Envoy's, per `vm_id`).
#[derive(Clone, Default)]
struct Shared {
    store: Rc<RefCell<MemorySharedData>>,
    /// An empty value reads as absent, with no compare-and-swap token (as the
    /// proxy-wasm ABI hands it to an SDK that reads a null pointer so).
    empty_reads_absent: bool,
    /// Another worker's turn, taken just before the next write: as if it ran
    /// between this worker's read and its compare-and-swap.
    interloper: Rc<RefCell<Option<Turn>>>,
}

/// Another worker's steps, run by the store.
type Turn = Box<dyn FnOnce()>;

impl Shared {
    fn empty_reads_absent() -> Shared {
        Shared {
            empty_reads_absent: true,
            ..Shared::default()
        }
    }

    fn before_next_write(&self, turn: impl FnOnce() + 'static) {
        *self.interloper.borrow_mut() = Some(Box::new(turn));
    }
}

impl SharedData for Shared {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let read = self.store.borrow().get(key);
        read.filter(|(bytes, _)| !(self.empty_reads_absent && bytes.is_empty()))
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        let turn = self.interloper.borrow_mut().take();
        if let Some(turn) = turn {
            turn();
        }
        self.store.borrow_mut().set(key, value, cas)
    }
}

/// One VM's broker, with the host's part played by the test: callout ids,
/// and what the host was asked to do.
struct Worker {
    broker: Broker,
    next_id: u32,
    events: Vec<Event>,
}

impl Worker {
    fn new(config: Value, shared: &Shared) -> Worker {
        let config = Config::parse_with_env(config.to_string().as_bytes(), &|_| None).unwrap();
        Worker {
            broker: Broker::new(config, Box::new(shared.clone()), NOW),
            next_id: 0,
            events: Vec::new(),
        }
    }

    fn alone(config: Value) -> Worker {
        Worker::new(config, &Shared::default())
    }

    fn request(&mut self, context: u32, path: &str, token: &str, now: Duration) -> Verdict {
        let view = RequestView::from_pairs(vec![
            (":method".into(), "GET".into()),
            (":path".into(), path.into()),
            (":authority".into(), "kubeflow.example.com".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ]);
        let verdict = self.broker.on_request(context, view, now);
        self.drain_events();
        verdict
    }

    /// Sends every callout the broker asks for; returns them with their ids.
    fn send(&mut self, now: Duration) -> Vec<(u32, Outgoing)> {
        let mut sent = Vec::new();
        while let Some(outgoing) = self.broker.poll_callout() {
            self.next_id += 1;
            sent.push((self.next_id, outgoing.clone()));
            self.broker.on_dispatched(outgoing, Ok(self.next_id), now);
        }
        self.drain_events();
        sent
    }

    fn tick(&mut self, now: Duration) -> Vec<(u32, Outgoing)> {
        self.broker.on_tick(now);
        self.send(now)
    }

    fn answer(&mut self, id: u32, status: &str, body: &str, now: Duration) -> Vec<Resume> {
        self.broker
            .on_answer(id, Some(status), body.as_bytes(), now);
        self.resumes()
    }

    fn resumes(&mut self) -> Vec<Resume> {
        std::iter::from_fn(|| self.broker.poll_resume()).collect()
    }

    fn drain_events(&mut self) {
        self.events
            .extend(std::iter::from_fn(|| self.broker.poll_event()));
    }

    /// How much `metric` was counted since the last call.
    fn counted(&mut self, metric: Metric) -> u64 {
        self.drain_events();
        let total = self
            .events
            .iter()
            .map(|event| match event {
                Event::Count(m, by) if *m == metric => *by,
                _ => 0,
            })
            .sum();
        self.events
            .retain(|event| !matches!(event, Event::Count(m, _) if *m == metric));
        total
    }
}

fn token() -> String {
    sign("RS256", Some("rsa-1"), &standard_claims())
}

/// Inline keys, the user from `email`, SubjectAccessReviews under `/ns/<ns>`.
fn authz_config(failure_mode: &str) -> Value {
    json!({
        "jwtRules": [{"issuer": DEX, "jwks": rsa_jwks_json(),
            "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]}],
        "authorization": {
            "failureMode": failure_mode,
            "apiserver": {"timeout": "2s"},
            "rules": [{"match": {"paths": ["^/ns/(?P<ns>[^/]+)"]},
                       "resourceAttributes": {"namespace": "{path.ns}", "resource": "runs"}}],
        },
    })
}

/// As `authz_config`, and every token of the rule goes through a TokenReview.
fn token_review_config(failure_mode: &str) -> Value {
    let mut config = authz_config(failure_mode);
    config["jwtRules"][0]["tokenReview"] = json!({"audiences": ["kfp"]});
    config
}

fn remote_keys_config() -> Value {
    json!({"jwtRules": [{"issuer": DEX, "jwksUri": "http://dex:5556/dex/keys", "timeout": "2s",
        "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]}]})
}

const ALLOWED: &str = r#"{"status":{"allowed":true}}"#;
const DENIED: &str = r#"{"status":{"allowed":false,"reason":"no binding"}}"#;
const RUNNER: &str = r#"{"status":{"authenticated":true,"audiences":["kfp"],
    "user":{"username":"system:serviceaccount:team-a:runner","groups":["system:serviceaccounts"]}}}"#;

fn jwks() -> String {
    json!({"keys": [rsa_jwk("rsa-1", None)]}).to_string()
}

/// The reason word of a refusal, `None` for anything else.
fn refused(verdict: &Verdict) -> Option<String> {
    let Verdict::Reply(reply, _) = verdict else {
        return None;
    };
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    Some(body["reason"].as_str().unwrap().to_string())
}

fn user_header(verdict: &Verdict) -> Option<&str> {
    let Verdict::Continue(edits, _) = verdict else {
        return None;
    };
    edits
        .set
        .iter()
        .find(|(name, _)| name == "kubeflow-userid")
        .map(|(_, value)| value.as_str())
}

fn path_of(outgoing: &Outgoing) -> &str {
    outgoing
        .headers
        .iter()
        .find(|(name, _)| name == ":path")
        .map(|(_, value)| value.as_str())
        .unwrap()
}

#[test]
fn identical_subject_access_reviews_are_asked_once_for_every_waiter() {
    let mut worker = Worker::alone(authz_config("deny"));
    let token = token();
    assert_eq!(
        worker.request(1, "/ns/team-a/x", &token, NOW),
        Verdict::Hold
    );
    assert_eq!(
        worker.request(2, "/ns/team-a/y", &token, NOW),
        Verdict::Hold
    );
    assert_eq!(worker.request(3, "/ns/team-b", &token, NOW), Verdict::Hold);
    assert_eq!(worker.counted(Metric::AuthzCacheMiss), 2);
    assert_eq!(worker.counted(Metric::AuthzCoalesced), 1);
    // The host sends callouts from the root's tick, which it asks to come now.
    assert_eq!(worker.broker.poll_tick_period(), Some(REVIEW_TICK));
    let sent = worker.tick(NOW + MS);
    assert_eq!(sent.len(), 2, "one review per namespace");
    assert!(sent
        .iter()
        .all(|(_, out)| path_of(out) == SUBJECT_ACCESS_REVIEWS));
    let body: Value = serde_json::from_slice(sent[0].1.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["spec"]["resourceAttributes"]["namespace"], "team-a");

    // Waiters resume in the order they came.
    let resumed = worker.answer(sent[0].0, "201", ALLOWED, NOW + 2 * MS);
    let contexts: Vec<u32> = resumed.iter().map(|resume| resume.context).collect();
    assert_eq!(contexts, [1, 2]);
    assert!(resumed
        .iter()
        .all(|resume| user_header(&resume.verdict) == Some("alice@example.com")));
    assert_eq!(worker.counted(Metric::AuthzAllowed), 2);
    let resumed = worker.answer(sent[1].0, "201", DENIED, NOW + 2 * MS);
    assert_eq!(resumed.len(), 1);
    assert_eq!(refused(&resumed[0].verdict).as_deref(), Some("forbidden"));
    assert_eq!(worker.counted(Metric::AuthzDenied), 1);

    // Both answers are cached now: no callout, no wait.
    let verdict = worker.request(4, "/ns/team-a/z", &token, NOW + SECOND);
    assert_eq!(user_header(&verdict), Some("alice@example.com"));
    let verdict = worker.request(5, "/ns/team-b", &token, NOW + SECOND);
    assert_eq!(refused(&verdict).as_deref(), Some("forbidden"));
    assert_eq!(worker.counted(Metric::AuthzCacheHit), 2);
    assert!(worker.tick(NOW + 2 * SECOND).is_empty());
}

#[test]
fn identical_token_reviews_are_asked_once_then_each_request_is_authorized() {
    let mut worker = Worker::alone(token_review_config("deny"));
    let token = token();
    assert_eq!(worker.request(1, "/ns/team-a", &token, NOW), Verdict::Hold);
    assert_eq!(worker.request(2, "/ns/team-a", &token, NOW), Verdict::Hold);
    assert_eq!(worker.counted(Metric::TokenReviewCacheMiss), 1);
    assert_eq!(worker.counted(Metric::TokenReviewCoalesced), 1);
    let sent = worker.tick(NOW + MS);
    assert_eq!(sent.len(), 1);
    assert_eq!(path_of(&sent[0].1), TOKEN_REVIEWS);
    let body: Value = serde_json::from_slice(sent[0].1.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["spec"]["token"], token.as_str());
    assert_eq!(body["spec"]["audiences"], json!(["kfp"]));

    // Reviewed: both requests now need one SubjectAccessReview, for the
    // service account the TokenReview named (not for the token's claims).
    assert!(worker
        .answer(sent[0].0, "201", RUNNER, NOW + 2 * MS)
        .is_empty());
    assert_eq!(worker.counted(Metric::TokenReviewAllowed), 1);
    assert_eq!(
        worker.counted(Metric::TokenReviewCacheHit),
        0,
        "its own answer is no hit"
    );
    assert_eq!(worker.counted(Metric::AuthzCacheMiss), 1);
    assert_eq!(worker.counted(Metric::AuthzCoalesced), 1);
    let sent = worker.send(NOW + 2 * MS);
    assert_eq!(sent.len(), 1, "sent at once from the answer's root context");
    let body: Value = serde_json::from_slice(sent[0].1.body.as_ref().unwrap()).unwrap();
    assert_eq!(body["spec"]["user"], "system:serviceaccount:team-a:runner");
    let resumed = worker.answer(sent[0].0, "201", ALLOWED, NOW + 3 * MS);
    assert_eq!(resumed.len(), 2);
    assert!(resumed
        .iter()
        .all(|resume| matches!(resume.verdict, Verdict::Continue(..))));

    // The TokenReview's answer is cached, by digest: a third request is a hit.
    let verdict = worker.request(3, "/ns/team-a", &token, NOW + SECOND);
    assert!(matches!(verdict, Verdict::Continue(..)), "{verdict:?}");
    assert_eq!(worker.counted(Metric::TokenReviewCacheHit), 1);
}

#[test]
fn requests_waiting_for_keys_share_one_fetch_and_resume_when_it_ends() {
    let mut worker = Worker::alone(remote_keys_config());
    let token = token();
    assert_eq!(worker.request(1, "/", &token, NOW), Verdict::Hold);
    assert_eq!(worker.request(2, "/", &token, NOW), Verdict::Hold);
    assert_eq!(worker.broker.poll_tick_period(), Some(WAITING_TICK));
    let sent = worker.tick(NOW + 10 * MS);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1.cluster, "outbound|5556||dex");
    assert_eq!(path_of(&sent[0].1), "/dex/keys");
    assert!(sent[0].1.body.is_none());
    assert!(worker.tick(NOW + 20 * MS).is_empty(), "one fetch at a time");
    let resumed = worker.answer(sent[0].0, "200", &jwks(), NOW + 30 * MS);
    let contexts: Vec<u32> = resumed.iter().map(|resume| resume.context).collect();
    assert_eq!(contexts, [1, 2]);
    assert!(resumed
        .iter()
        .all(|resume| user_header(&resume.verdict) == Some("alice@example.com")));
    assert_eq!(worker.counted(Metric::FetchSucceeded), 1);
    assert_eq!(worker.counted(Metric::Allowed), 2);
    assert_eq!(worker.broker.poll_tick_period(), Some(IDLE_TICK));
}

#[test]
fn a_request_whose_stream_ends_while_parked_is_never_resumed() {
    let mut worker = Worker::alone(authz_config("deny"));
    let token = token();
    assert_eq!(worker.request(1, "/ns/team-a", &token, NOW), Verdict::Hold);
    assert_eq!(worker.request(2, "/ns/team-a", &token, NOW), Verdict::Hold);
    worker.broker.on_stream_end(1);
    let sent = worker.tick(NOW + MS);
    let resumed = worker.answer(sent[0].0, "201", ALLOWED, NOW + 2 * MS);
    let contexts: Vec<u32> = resumed.iter().map(|resume| resume.context).collect();
    assert_eq!(contexts, [2]);
    assert_eq!(worker.counted(Metric::AuthzAllowed), 1);

    // Every waiter gone: the review is still answered, and its answer kept.
    assert_eq!(worker.request(3, "/ns/team-b", &token, NOW), Verdict::Hold);
    worker.broker.on_stream_end(3);
    let sent = worker.tick(NOW + MS);
    assert_eq!(sent.len(), 1, "the review is asked all the same");
    assert!(worker
        .answer(sent[0].0, "201", ALLOWED, NOW + 2 * MS)
        .is_empty());
    let verdict = worker.request(4, "/ns/team-b", &token, NOW + 3 * MS);
    assert!(matches!(verdict, Verdict::Continue(..)));

    // The same for keys.
    let mut worker = Worker::alone(remote_keys_config());
    assert_eq!(worker.request(1, "/", &token, NOW), Verdict::Hold);
    worker.broker.on_stream_end(1);
    assert_eq!(worker.broker.poll_tick_period(), Some(WAITING_TICK));
    let sent = worker.tick(NOW + 10 * MS);
    assert!(worker
        .answer(sent[0].0, "200", &jwks(), NOW + 20 * MS)
        .is_empty());
    assert_eq!(worker.broker.poll_tick_period(), Some(IDLE_TICK));
}

#[test]
fn a_wait_for_keys_ends_at_the_rules_timeout() {
    let mut worker = Worker::alone(remote_keys_config());
    let token = token();
    assert_eq!(worker.request(1, "/", &token, NOW), Verdict::Hold);
    let sent = worker.tick(NOW + 10 * MS);
    assert_eq!(sent.len(), 1);
    assert!(worker.tick(NOW + SECOND).is_empty());
    assert!(worker.resumes().is_empty(), "still within the 2 s timeout");
    worker.tick(NOW + 2 * SECOND);
    let resumed = worker.resumes();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        refused(&resumed[0].verdict).as_deref(),
        Some("jwks_unavailable")
    );
    let Verdict::Reply(reply, _) = &resumed[0].verdict else {
        unreachable!()
    };
    assert_eq!(reply.status, 503);
}

#[test]
fn a_callout_the_host_never_answers_is_given_up_after_its_timeout() {
    // A SubjectAccessReview: failureMode answers, and the late answer is dropped.
    let mut worker = Worker::alone(authz_config("deny"));
    let token = token();
    worker.request(1, "/ns/team-a", &token, NOW);
    let sent = worker.tick(NOW);
    worker.tick(NOW + 2 * SECOND);
    assert!(
        worker.resumes().is_empty(),
        "the host answers at the timeout"
    );
    worker.tick(NOW + 2 * SECOND + CALLOUT_GRACE);
    let resumed = worker.resumes();
    assert_eq!(resumed.len(), 1);
    assert_eq!(
        refused(&resumed[0].verdict).as_deref(),
        Some("authorizer_unavailable")
    );
    assert!(worker
        .answer(sent[0].0, "201", ALLOWED, NOW + 4 * SECOND)
        .is_empty());
    assert_eq!(worker.counted(Metric::AuthzAllowed), 0);

    // A TokenReview.
    let mut worker = Worker::alone(token_review_config("deny"));
    worker.request(1, "/ns/team-a", &token, NOW);
    worker.tick(NOW);
    worker.tick(NOW + 3 * SECOND);
    let resumed = worker.resumes();
    assert_eq!(
        refused(&resumed[0].verdict).as_deref(),
        Some("authorizer_unavailable")
    );
    assert_eq!(worker.counted(Metric::TokenReviewError), 1);

    // A key fetch: the fetch counts as failed, and the next one may start.
    let mut worker = Worker::alone(remote_keys_config());
    let sent = worker.tick(NOW);
    assert_eq!(sent.len(), 1, "the first tick fetches before any request");
    assert!(worker.tick(NOW + 2 * SECOND).is_empty());
    assert!(worker.tick(NOW + 3 * SECOND).is_empty());
    assert_eq!(worker.counted(Metric::FetchFailed), 1);
    assert_eq!(
        worker.tick(NOW + 4 * SECOND).len(),
        1,
        "retried after backoff"
    );
}

#[test]
fn an_answer_nobody_waits_for_changes_nothing() {
    let mut worker = Worker::alone(authz_config("deny"));
    worker.drain_events();
    worker.events.clear();
    assert!(worker.answer(42, "201", ALLOWED, NOW).is_empty());
    worker.drain_events();
    assert!(worker.events.is_empty(), "{:?}", worker.events);
    let verdict = worker.request(1, "/ns/team-a", &token(), NOW);
    assert_eq!(verdict, Verdict::Hold, "nothing was cached");
}

#[test]
fn failure_modes_answer_when_the_api_server_cannot() {
    let token = token();
    for (mode, expected) in [("deny", Some("authorizer_unavailable")), ("allow", None)] {
        // A SubjectAccessReview answered 500.
        let mut worker = Worker::alone(authz_config(mode));
        worker.request(1, "/ns/team-a", &token, NOW);
        let sent = worker.tick(NOW);
        let resumed = worker.answer(sent[0].0, "500", "", NOW);
        assert_eq!(refused(&resumed[0].verdict).as_deref(), expected, "{mode}");
        if expected.is_none() {
            assert!(
                matches!(resumed[0].verdict, Verdict::Continue(..)),
                "{mode}"
            );
        }
        // Nothing cached: the next request asks again.
        assert_eq!(worker.request(2, "/ns/team-a", &token, NOW), Verdict::Hold);

        // A TokenReview the host refused to send (an undefined cluster).
        let mut worker = Worker::alone(token_review_config(mode));
        worker.request(1, "/ns/team-a", &token, NOW);
        worker.broker.on_tick(NOW);
        let outgoing = worker.broker.poll_callout().unwrap();
        worker
            .broker
            .on_dispatched(outgoing, Err("BadArgument".into()), NOW);
        worker.drain_events();
        assert!(worker.events.iter().any(|event| matches!(event,
            Event::Log(Level::Warn, line) if line.contains("cannot reach the API server"))));
        match mode {
            "deny" => {
                let resumed = worker.resumes();
                assert_eq!(
                    refused(&resumed[0].verdict).as_deref(),
                    Some("authorizer_unavailable")
                );
            }
            _ => {
                // Unreviewed for a while: the claims name the subject of
                // the SubjectAccessReview that follows.
                let sent = worker.send(NOW);
                let body: Value = serde_json::from_slice(sent[0].1.body.as_ref().unwrap()).unwrap();
                assert_eq!(body["spec"]["user"], "alice@example.com");
                let resumed = worker.answer(sent[0].0, "201", ALLOWED, NOW);
                assert!(matches!(resumed[0].verdict, Verdict::Continue(..)));
            }
        }
        assert_eq!(worker.counted(Metric::TokenReviewError), 1);
    }
}

#[test]
fn a_revoked_token_is_refused_and_remembered() {
    let mut worker = Worker::alone(token_review_config("deny"));
    let token = token();
    worker.request(1, "/ns/team-a", &token, NOW);
    let sent = worker.tick(NOW);
    let revoked = r#"{"status":{"authenticated":false,"error":"service account deleted"}}"#;
    let resumed = worker.answer(sent[0].0, "201", revoked, NOW);
    assert_eq!(
        refused(&resumed[0].verdict).as_deref(),
        Some("token_revoked")
    );
    let verdict = worker.request(2, "/ns/team-a", &token, NOW + SECOND);
    assert_eq!(refused(&verdict).as_deref(), Some("token_revoked"));
    assert_eq!(worker.counted(Metric::TokenReviewDenied), 1);
}

#[test]
fn workers_share_one_key_fetch_through_shared_data() {
    let shared = Shared::default();
    let mut a = Worker::new(remote_keys_config(), &shared);
    let mut b = Worker::new(remote_keys_config(), &shared);
    let token = token();
    assert_eq!(a.request(1, "/", &token, NOW), Verdict::Hold);
    assert_eq!(b.request(7, "/", &token, NOW), Verdict::Hold);
    let sent_a = a.tick(NOW + 10 * MS);
    let sent_b = b.tick(NOW + 10 * MS);
    assert_eq!(sent_a.len() + sent_b.len(), 1, "one lease, one fetch");
    let (fetcher, waiter, id) = if sent_a.is_empty() {
        (&mut b, &mut a, sent_b[0].0)
    } else {
        (&mut a, &mut b, sent_a[0].0)
    };
    let resumed = fetcher.answer(id, "200", &jwks(), NOW + 20 * MS);
    assert_eq!(resumed.len(), 1);
    assert!(waiter.resumes().is_empty(), "until its next tick");
    assert!(waiter.tick(NOW + 30 * MS).is_empty(), "no fetch of its own");
    let resumed = waiter.resumes();
    assert_eq!(resumed.len(), 1);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));

    // A lease whose holder died expires: another worker takes over.
    let shared = Shared::default();
    let mut a = Worker::new(remote_keys_config(), &shared);
    let mut b = Worker::new(remote_keys_config(), &shared);
    assert_eq!(a.tick(NOW).len(), 1);
    assert!(b.tick(NOW + SECOND).is_empty());
    assert_eq!(b.request(1, "/", &token, NOW + SECOND), Verdict::Hold);
    // 2 × timeout + 1 s: the lease is gone, and b fetches.
    let sent = b.tick(NOW + 5 * SECOND + MS);
    assert_eq!(sent.len(), 1);
    let resumed = b.answer(sent[0].0, "200", &jwks(), NOW + 6 * SECOND);
    assert_eq!(resumed.len(), 1);
}

#[test]
fn refusals_are_counted_and_logged_once() {
    let mut worker = Worker::alone(authz_config("deny"));
    worker.drain_events();
    worker.events.clear();
    let verdict = worker.request(1, "/ns/team-a", "not-a-jwt", NOW);
    assert_eq!(refused(&verdict).as_deref(), Some("token_malformed"));
    assert_eq!(worker.counted(Metric::Denied), 1);
    assert_eq!(worker.counted(Metric::DeniedFor(Reason::TokenMalformed)), 1);
    let lines: Vec<&String> = worker
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Log(Level::Info, line) => Some(line),
            _ => None,
        })
        .collect();
    assert_eq!(
        lines,
        ["denied 401 GET /ns/team-a: token_malformed: not three dot-separated segments"]
    );
}

fn token_of(email: &str) -> String {
    let mut claims = standard_claims();
    claims["email"] = email.into();
    sign("RS256", Some("rsa-1"), &claims)
}

#[test]
fn workers_ask_a_subject_access_review_once_and_share_its_answer() {
    let shared = Shared::default();
    let mut a = Worker::new(authz_config("deny"), &shared);
    let mut b = Worker::new(authz_config("deny"), &shared);
    let alice = token();
    assert_eq!(a.request(1, "/ns/team-a", &alice, NOW), Verdict::Hold);
    assert_eq!(b.request(2, "/ns/team-a", &alice, NOW), Verdict::Hold);
    let sent = a.tick(NOW + MS);
    assert_eq!(sent.len(), 1, "a won the lease");
    assert!(b.tick(NOW + MS).is_empty(), "b waits for a's answer");
    assert_eq!(
        a.counted(Metric::AuthzCacheMiss),
        1,
        "one miss per review sent"
    );
    assert_eq!(b.counted(Metric::AuthzCacheMiss), 0);
    assert_eq!(b.counted(Metric::AuthzCoalesced), 1, "b joined a's review");
    assert_eq!(
        b.broker.poll_tick_period(),
        Some(WAITING_TICK),
        "and looks it up"
    );
    assert_eq!(a.answer(sent[0].0, "201", ALLOWED, NOW + 2 * MS).len(), 1);
    assert!(b.tick(NOW + 10 * MS).is_empty());
    let resumed = b.resumes();
    assert_eq!(resumed.len(), 1);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));

    // A third worker adopts the answer without asking or waiting.
    let mut c = Worker::new(authz_config("deny"), &shared);
    let verdict = c.request(3, "/ns/team-a", &alice, NOW + SECOND);
    assert_eq!(user_header(&verdict), Some("alice@example.com"));
    assert_eq!(c.counted(Metric::AuthzCacheHit), 1);
    assert!(c.tick(NOW + SECOND).is_empty());
    // Not for another user, nor for another namespace: those are other reviews.
    let mallory = token_of("mallory@example.com");
    assert_eq!(
        c.request(4, "/ns/team-a", &mallory, NOW + SECOND),
        Verdict::Hold
    );
    assert_eq!(
        c.request(5, "/ns/team-b", &alice, NOW + SECOND),
        Verdict::Hold
    );
    assert_eq!(c.tick(NOW + SECOND + MS).len(), 2);
}

/// Two workers' first requests with `token()`; b's comes while a leases
/// its review (see `workers_racing_for_a_lease_ask_the_review_once`).
fn racing_first_requests(config: Value) -> (Worker, Worker) {
    let shared = Shared::empty_reads_absent();
    let mut a = Worker::new(config.clone(), &shared);
    let b = Rc::new(RefCell::new(Worker::new(config, &shared)));
    let (b_turn, token) = (b.clone(), token());
    let b_token = token.clone();
    shared.before_next_write(move || {
        let verdict = b_turn.borrow_mut().request(2, "/ns/team-a", &b_token, NOW);
        assert_eq!(verdict, Verdict::Hold);
    });
    assert_eq!(a.request(1, "/ns/team-a", &token, NOW), Verdict::Hold);
    let b = Rc::try_unwrap(b).ok().expect("b's turn was taken");
    (a, b.into_inner())
}

#[test]
fn workers_racing_for_a_token_review_lease_ask_it_once() {
    let (mut a, mut b) = racing_first_requests(token_review_config("deny"));
    assert!(a.tick(NOW + MS).is_empty(), "a waits");
    let sent = b.tick(NOW + MS);
    assert_eq!(sent.len(), 1, "b leased first and asks");
    assert_eq!(path_of(&sent[0].1), TOKEN_REVIEWS);
}

/// Worker b's first request comes between worker a's read of the review's
/// vacant slot and a's lease: b's lease lands first, a's compare-and-swap
/// fails and a waits on b's review. One review is asked, even on a host that
/// reads an empty value as absent (issue 17: both asked).
#[test]
fn workers_racing_for_a_lease_ask_the_review_once() {
    let (mut a, mut b) = racing_first_requests(authz_config("deny"));
    let sent_by_a = a.tick(NOW + MS);
    let sent_by_b = b.tick(NOW + MS);
    assert_eq!(
        (sent_by_a.len(), sent_by_b.len()),
        (0, 1),
        "b leased first and asks; a waits"
    );
    assert_eq!(
        b.answer(sent_by_b[0].0, "201", ALLOWED, NOW + 2 * MS).len(),
        1
    );
    assert!(a.tick(NOW + 10 * MS).is_empty(), "a asks nothing");
    let resumed = a.resumes();
    assert_eq!(resumed.len(), 1);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));
}

#[test]
fn a_refused_answer_is_shared_too_and_expires_where_it_was_asked() {
    let shared = Shared::default();
    let mut a = Worker::new(authz_config("deny"), &shared);
    let mut b = Worker::new(authz_config("deny"), &shared);
    let alice = token();
    a.request(1, "/ns/team-a", &alice, NOW);
    let sent = a.tick(NOW);
    a.answer(sent[0].0, "201", DENIED, NOW);
    let verdict = b.request(2, "/ns/team-a", &alice, NOW + SECOND);
    assert_eq!(refused(&verdict).as_deref(), Some("forbidden"));
    // deniedTtl (30 s by default) runs from a's answer, in b too.
    let after = NOW + Duration::from_secs(30);
    assert_eq!(b.request(3, "/ns/team-a", &alice, after), Verdict::Hold);
}

#[test]
fn a_failed_review_releases_its_lease_and_each_worker_asks_for_itself() {
    let shared = Shared::default();
    let mut a = Worker::new(authz_config("deny"), &shared);
    let mut b = Worker::new(authz_config("deny"), &shared);
    let alice = token();
    a.request(1, "/ns/team-a", &alice, NOW);
    b.request(2, "/ns/team-a", &alice, NOW);
    let sent = a.tick(NOW);
    assert!(b.tick(NOW).is_empty());
    let resumed = a.answer(sent[0].0, "500", "", NOW + MS);
    assert_eq!(
        refused(&resumed[0].verdict).as_deref(),
        Some("authorizer_unavailable")
    );
    let sent = b.tick(NOW + 10 * MS);
    assert_eq!(sent.len(), 1, "b asks for itself");
    let resumed = b.answer(sent[0].0, "201", ALLOWED, NOW + 20 * MS);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));
}

#[test]
fn a_lease_whose_worker_never_answers_is_taken_over() {
    let shared = Shared::default();
    let mut a = Worker::new(authz_config("deny"), &shared);
    let mut b = Worker::new(authz_config("deny"), &shared);
    let alice = token();
    a.request(1, "/ns/team-a", &alice, NOW);
    assert_eq!(a.tick(NOW).len(), 1);
    // a's VM is gone (its worker restarted): nobody answers, nobody releases.
    b.request(2, "/ns/team-a", &alice, NOW);
    assert!(
        b.tick(NOW + 2 * SECOND).is_empty(),
        "within the 2 s timeout"
    );
    let sent = b.tick(NOW + 3 * SECOND);
    assert_eq!(sent.len(), 1, "the lease lapsed after timeout + grace");
    let resumed = b.answer(sent[0].0, "201", ALLOWED, NOW + 3 * SECOND);
    assert_eq!(resumed.len(), 1);
}

#[test]
fn a_retired_configuration_hands_its_leases_on_and_the_waiters_elsewhere_go_on() {
    // a's configuration is replaced (Envoy deletes its root context) while
    // it fetches the keys and asks a review: b does both at its next tick.
    let shared = Shared::default();
    let mut a = Worker::new(remote_keys_config(), &shared);
    let mut b = Worker::new(remote_keys_config(), &shared);
    let token = token();
    assert_eq!(a.tick(NOW).len(), 1, "a holds the fetch's lease");
    assert_eq!(b.request(1, "/", &token, NOW), Verdict::Hold);
    assert!(b.tick(NOW + 10 * MS).is_empty());
    a.broker.retire(NOW + 20 * MS);
    let sent = b.tick(NOW + 30 * MS);
    assert_eq!(sent.len(), 1, "b fetches now, not when the lease would end");
    let resumed = b.answer(sent[0].0, "200", &jwks(), NOW + 40 * MS);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));

    let shared = Shared::default();
    let mut a = Worker::new(authz_config("deny"), &shared);
    let mut b = Worker::new(authz_config("deny"), &shared);
    a.request(1, "/ns/team-a", &token, NOW);
    b.request(2, "/ns/team-a", &token, NOW);
    assert_eq!(a.tick(NOW).len(), 1, "a holds the review's lease");
    assert!(b.tick(NOW + 10 * MS).is_empty());
    a.broker.retire(NOW + 20 * MS);
    let sent = b.tick(NOW + 30 * MS);
    assert_eq!(sent.len(), 1, "b asks for itself now");
    let resumed = b.answer(sent[0].0, "201", ALLOWED, NOW + 40 * MS);
    assert_eq!(user_header(&resumed[0].verdict), Some("alice@example.com"));
}

#[test]
fn workers_ask_a_token_review_once_and_share_its_answer() {
    let shared = Shared::default();
    let mut a = Worker::new(token_review_config("deny"), &shared);
    let mut b = Worker::new(token_review_config("deny"), &shared);
    let token = token();
    a.request(1, "/ns/team-a", &token, NOW);
    b.request(2, "/ns/team-a", &token, NOW);
    let sent = a.tick(NOW);
    assert!(b.tick(NOW).is_empty());
    a.answer(sent[0].0, "201", RUNNER, NOW + MS);
    // a asks the SubjectAccessReview for the service account; b adopts the
    // TokenReview's answer and waits for a's SubjectAccessReview.
    let sent = a.send(NOW + MS);
    assert_eq!(path_of(&sent[0].1), SUBJECT_ACCESS_REVIEWS);
    assert!(b.tick(NOW + 10 * MS).is_empty());
    assert_eq!(
        b.counted(Metric::TokenReviewAllowed),
        0,
        "counted where it was asked"
    );
    a.answer(sent[0].0, "201", ALLOWED, NOW + 20 * MS);
    assert!(b.tick(NOW + 30 * MS).is_empty());
    let resumed = b.resumes();
    assert_eq!(resumed.len(), 1);
    assert!(matches!(resumed[0].verdict, Verdict::Continue(..)));
    assert_eq!(a.counted(Metric::TokenReviewAllowed), 1);
}

/// The access log's fields of a verdict that goes on or answers.
fn access(verdict: &Verdict) -> &Access {
    match verdict {
        Verdict::Continue(_, access) | Verdict::Reply(_, access) => access,
        Verdict::Hold => panic!("held"),
    }
}

#[test]
fn held_requests_carry_their_access_fields_when_they_resume() {
    use crate::access::Decision;
    // A SubjectAccessReview: who, and what the review asked, allowed or not.
    let mut worker = Worker::alone(authz_config("deny"));
    let token = token();
    assert_eq!(worker.request(1, "/ns/team-a", &token, NOW), Verdict::Hold);
    let sent = worker.tick(NOW + MS);
    let resumed = worker.answer(sent[0].0, "201", ALLOWED, NOW + 2 * MS);
    let allowed = access(&resumed[0].verdict);
    assert_eq!(allowed.decision, Decision::Allowed);
    assert_eq!(allowed.user.as_deref(), Some("alice@example.com"));
    assert_eq!(allowed.issuer.as_deref(), Some(DEX));
    assert_eq!(allowed.verb.as_deref(), Some("get"));
    assert_eq!(allowed.resource.as_deref(), Some("runs"));
    assert_eq!(allowed.namespace.as_deref(), Some("team-a"));
    assert_eq!(allowed.reason, None);
    // The cached answer gives the same fields without a wait.
    let again = worker.request(2, "/ns/team-a", &token, NOW + 3 * MS);
    assert_eq!(access(&again), allowed);

    assert_eq!(worker.request(3, "/ns/team-b", &token, NOW), Verdict::Hold);
    let sent = worker.tick(NOW + MS);
    let resumed = worker.answer(sent[0].0, "201", DENIED, NOW + 2 * MS);
    let denied = access(&resumed[0].verdict);
    assert_eq!(denied.decision, Decision::Denied);
    assert_eq!(denied.reason, Some(Reason::Forbidden));
    assert_eq!(denied.detail.as_deref(), Some("no binding"));
    assert_eq!(denied.user.as_deref(), Some("alice@example.com"));
    assert_eq!(denied.namespace.as_deref(), Some("team-b"));

    // Keys: decided again once they come.
    let mut worker = Worker::alone(remote_keys_config());
    assert_eq!(worker.request(1, "/", &token, NOW), Verdict::Hold);
    let sent = worker.tick(NOW + 10 * MS);
    let resumed = worker.answer(sent[0].0, "200", &jwks(), NOW + 20 * MS);
    let fetched = access(&resumed[0].verdict);
    assert_eq!(fetched.decision, Decision::Allowed);
    assert_eq!(fetched.user.as_deref(), Some("alice@example.com"));
    assert_eq!(fetched.verb, None, "no review");

    // A TokenReview that fails with failureMode deny: refused, and nobody
    // is named (the token was not confirmed).
    let mut worker = Worker::alone(token_review_config("deny"));
    assert_eq!(worker.request(1, "/ns/team-a", &token, NOW), Verdict::Hold);
    let sent = worker.tick(NOW + MS);
    let resumed = worker.answer(sent[0].0, "500", "", NOW + 2 * MS);
    let unavailable = access(&resumed[0].verdict);
    assert_eq!(unavailable.decision, Decision::Denied);
    assert_eq!(unavailable.reason, Some(Reason::AuthorizerUnavailable));
    assert_eq!(unavailable.user, None);
}

/// `signatureVerification` at configuration: a host that fails the
/// known-answer check is refused under `host`, replaced by kfauth's own code
/// with a warning under `auto`, and not asked under `wasm`; the gauge says
/// which (0 in each case here), and comes with the first events.
#[test]
fn signature_verification_is_chosen_at_configuration() {
    use crate::signature_host::tests::ABSENT;
    let configure = |mode: &str| {
        let config = json!({"jwtRules": [{"issuer": DEX, "jwks": rsa_jwks_json()}],
                            "signatureVerification": mode});
        let config = Config::parse(config.to_string().as_bytes()).unwrap();
        Broker::configure(config, Box::new(Shared::default()), &ABSENT, NOW)
    };
    let refused = configure("host").err().unwrap().to_string();
    assert!(refused.contains("signatureVerification"), "{refused}");
    for (mode, level) in [("auto", Level::Warn), ("wasm", Level::Info)] {
        let mut broker = configure(mode).unwrap();
        let events: Vec<Event> = std::iter::from_fn(|| broker.poll_event()).collect();
        assert!(
            matches!(&events[0], Event::Log(l, line) if *l == level && line.starts_with("signatures: verified in Wasm")),
            "{mode}: {events:?}"
        );
        assert_eq!(
            events[1],
            Event::Record(Metric::SignaturesHost, 0),
            "{mode}"
        );
    }
}

/// A request whose session cookie stays at the gateway is counted whatever
/// the log level; its debug line is made only while the host writes debug
/// lines, as it says on each tick.
#[test]
fn debug_lines_are_made_only_while_the_host_writes_them() {
    let token = token();
    let mut worker = Worker::alone(json!({"jwtRules": [{"issuer": DEX, "jwks": rsa_jwks_json()}]}));
    let browser = |worker: &mut Worker, context: u32| {
        let view = RequestView::from_pairs(vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/pipeline/".into()),
            (":authority".into(), "kubeflow.example.com".into()),
            (
                "cookie".into(),
                "oauth2_proxy_kubeflow=session; theme=dark".into(),
            ),
            ("authorization".into(), format!("Bearer {token}")),
        ]);
        assert!(matches!(
            worker.broker.on_request(context, view, NOW),
            Verdict::Continue(..)
        ));
        let stripped = worker.counted(Metric::SessionCookieStripped);
        let debug_lines = worker
            .events
            .drain(..)
            .filter(|event| matches!(event, Event::Log(Level::Debug, line) if line.starts_with("session: removed")))
            .count();
        (stripped, debug_lines)
    };
    assert_eq!(
        browser(&mut worker, 1),
        (1, 1),
        "until told, debug lines are made"
    );
    worker.broker.set_debug_lines(false);
    assert_eq!(browser(&mut worker, 2), (1, 0));
    worker.broker.set_debug_lines(true);
    assert_eq!(browser(&mut worker, 3), (1, 1));
}
