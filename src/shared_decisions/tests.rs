//! Several workers' VMs over one in-memory shared data (Envoy's semantics:
//! every write bumps the token, a stale token fails), with races forced by
//! a store that lets another VM write between a read and a write.

use std::time::Duration;

use super::slot::MAX_SLOT_BYTES;
use super::*;
use crate::keystore::shared::MemorySharedData;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const NOW: Duration = Duration::from_secs(1_000_000);
const LEASE: Duration = Duration::from_secs(5);
const SCOPE: &str = "outbound|443||kubernetes.default.svc";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn spec(user: &str, name: &str) -> String {
    format!(
        r#"{{"groups":["team-a"],"resourceAttributes":{{"name":"{name}","namespace":"ns","verb":"get"}},"user":"{user}"}}"#
    )
}

/// `count` VMs (ids 1..=count) over one store, prepared as at configuration,
/// each with its own fresh key (one of which stands).
fn workers(count: u64, slots: usize) -> (MemorySharedData, Vec<SharedDecisions>) {
    let mut shared = MemorySharedData::default();
    let vms: Vec<SharedDecisions> = (1..=count)
        .map(|vm| SharedDecisions::new(vm, slots, SCOPE))
        .collect();
    for (index, vm) in vms.iter().enumerate() {
        vm.prepare(&mut shared, DigestKey::new([index as u8; 32]));
    }
    (shared, vms)
}

fn access(table: &SharedDecisions, shared: &dyn SharedData, spec: &str) -> ReviewDigest {
    table.digest(shared, &Review::Access { spec }).unwrap()
}

fn allowed_until(expires: Duration) -> Lookup {
    Lookup::Answer {
        answer: Answer::Allowed,
        expires,
    }
}

/// `by` publishes "allowed" for 300 s, and `reader` reads it back.
fn publish_allowed_and_read(
    by: &SharedDecisions,
    reader: &SharedDecisions,
    shared: &mut MemorySharedData,
    digest: &ReviewDigest,
) {
    let expires = NOW + secs(300);
    assert!(by.publish(shared, digest, Answer::Allowed, expires, NOW));
    assert_eq!(reader.lookup(shared, digest, NOW), allowed_until(expires));
}

/// Shared data where `interloper` runs just before the first write, as if
/// another VM wrote between this VM's read and its compare-and-swap.
struct Racing<'a> {
    store: &'a mut MemorySharedData,
    interloper: Option<Interloper<'a>>,
}

/// Another VM's writes.
type Interloper<'a> = Box<dyn FnOnce(&mut MemorySharedData) + 'a>;

impl SharedData for Racing<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.store.get(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        if let Some(interloper) = self.interloper.take() {
            interloper(self.store);
        }
        self.store.set(key, value, cas)
    }
}

#[test]
fn one_vm_asks_the_others_wait_then_read_its_answer() {
    let (mut shared, vms) = workers(4, 64);
    let review = spec("alice@example.com", "iris");
    let digest = access(&vms[0], &shared, &review);
    for vm in &vms[1..] {
        assert_eq!(access(vm, &shared, &review), digest, "one key for every VM");
    }
    assert_eq!(vms[0].lookup(&shared, &digest, NOW), Lookup::Vacant);
    assert_eq!(vms[0].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
    for vm in &vms[1..] {
        let until = NOW + LEASE;
        assert_eq!(vm.lookup(&shared, &digest, NOW), Lookup::Leased { until });
        assert_eq!(
            vm.lease(&mut shared, &digest, NOW, LEASE),
            Claim::Held { until }
        );
    }
    assert_eq!(
        vms[0].lease(&mut shared, &digest, NOW, LEASE),
        Claim::Won,
        "the holder asking again still holds it"
    );
    let expires = NOW + secs(300);
    assert!(vms[0].publish(&mut shared, &digest, Answer::Allowed, expires, NOW));
    for vm in &vms {
        assert_eq!(
            vm.lookup(&shared, &digest, NOW + secs(1)),
            allowed_until(expires)
        );
    }
    assert_eq!(
        vms[2].lease(&mut shared, &digest, NOW + secs(1), LEASE),
        Claim::Answered {
            answer: Answer::Allowed,
            expires
        }
    );
}

#[test]
fn the_first_published_key_stands_and_a_corrupt_one_is_replaced() {
    let mut shared = MemorySharedData::default();
    let table = SharedDecisions::new(1, 8, SCOPE);
    assert_eq!(table.digest(&shared, &Review::Access { spec: "{}" }), None);
    table.prepare(&mut shared, DigestKey::new([1; 32]));
    let first = table.digest(&shared, &Review::Access { spec: "{}" });
    SharedDecisions::new(2, 8, SCOPE).prepare(&mut shared, DigestKey::new([2; 32]));
    assert_eq!(table.digest(&shared, &Review::Access { spec: "{}" }), first);
    assert_eq!(
        digest::published_key(&shared),
        Some(DigestKey::new([1; 32]))
    );

    shared.set(digest::KEY_NAME, b"not a key", None).unwrap();
    assert_eq!(table.digest(&shared, &Review::Access { spec: "{}" }), None);
    table.prepare(&mut shared, DigestKey::new([3; 32]));
    assert_eq!(
        digest::published_key(&shared),
        Some(DigestKey::new([3; 32]))
    );
    // A fresh key is drawn, not a constant.
    assert_ne!(DigestKey::fresh(), DigestKey::new([0; 32]));
}

#[test]
fn two_vms_racing_for_one_lease_one_wins() {
    let (mut store, vms) = workers(2, 64);
    let review = spec("alice@example.com", "iris");
    let digest = access(&vms[0], &store, &review);
    let rival = vms[1].clone();
    let mut racing = Racing {
        store: &mut store,
        interloper: Some(Box::new(move |store: &mut MemorySharedData| {
            assert_eq!(rival.lease(store, &digest, NOW, LEASE), Claim::Won);
        })),
    };
    // VM 1 read the slot vacant, VM 2 took it before VM 1's write: VM 1's
    // compare-and-swap fails, and its second read finds VM 2's lease.
    assert_eq!(
        vms[0].lease(&mut racing, &digest, NOW, LEASE),
        Claim::Held { until: NOW + LEASE }
    );
}

/// Shared data as the proxy-wasm ABI hands it over: an empty value comes
/// back as no memory at all, which an SDK reads as no value and no
/// compare-and-swap token (the proxy-wasm Rust SDK does, and so did kfauth's
/// host layer); a write with no token is unconditional.
struct EmptyReadsAbsent<'a>(Racing<'a>);

impl SharedData for EmptyReadsAbsent<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.0.get(key).filter(|(bytes, _)| !bytes.is_empty())
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        self.0.set(key, value, cas)
    }
}

/// VM 1 reads a vacant slot, VM 2 leases it, then VM 1 writes: as
/// [`two_vms_racing_for_one_lease_one_wins`], over a host where an empty
/// value reads as absent.
fn race_where_empty_reads_absent(
    store: &mut MemorySharedData,
    first: &SharedDecisions,
    rival: &SharedDecisions,
    digest: ReviewDigest,
) -> (Claim, Claim) {
    let rival = rival.clone();
    let rivals = std::rc::Rc::new(std::cell::RefCell::new(None));
    let seen = rivals.clone();
    let mut racing = EmptyReadsAbsent(Racing {
        store,
        interloper: Some(Box::new(move |store: &mut MemorySharedData| {
            let mut theirs = EmptyReadsAbsent(Racing {
                store,
                interloper: None,
            });
            *seen.borrow_mut() = Some(rival.lease(&mut theirs, &digest, NOW, LEASE));
        })),
    });
    let ours = first.lease(&mut racing, &digest, NOW, LEASE);
    let theirs = rivals.borrow_mut().take().expect("the rival ran");
    (ours, theirs)
}

#[test]
fn a_vacant_slot_keeps_its_token_where_an_empty_value_reads_as_absent() {
    let (mut store, vms) = workers(3, 64);
    let digest = access(&vms[0], &store, &spec("alice@example.com", "iris"));
    // A slot as `prepare` left it: had it been stored empty, VM 1's write
    // would carry no token and land on VM 2's lease, and both would ask.
    let (ours, theirs) = race_where_empty_reads_absent(&mut store, &vms[0], &vms[1], digest);
    assert_eq!(
        (ours, theirs),
        (Claim::Held { until: NOW + LEASE }, Claim::Won),
        "one lease, one review"
    );
    // A slot as `release` leaves it: the same.
    vms[1].release(&mut store, &digest);
    assert_eq!(vms[0].lookup(&store, &digest, NOW), Lookup::Vacant);
    let (ours, theirs) = race_where_empty_reads_absent(&mut store, &vms[2], &vms[0], digest);
    assert_eq!(
        (ours, theirs),
        (Claim::Held { until: NOW + LEASE }, Claim::Won),
        "one lease, one review, after a release"
    );
}

#[test]
fn racing_writes_of_different_reviews_in_one_bucket_both_land() {
    // One bucket: every review meets every other.
    let (mut store, vms) = workers(2, WAYS);
    let alice = access(&vms[0], &store, &spec("alice@example.com", "iris"));
    let bob = access(&vms[0], &store, &spec("bob@example.com", "iris"));
    let rival = vms[1].clone();
    let mut racing = Racing {
        store: &mut store,
        interloper: Some(Box::new(move |store: &mut MemorySharedData| {
            let denied = Answer::Denied {
                reason: Some("no binding".into()),
            };
            assert!(rival.publish(store, &bob, denied, NOW + secs(30), NOW));
        })),
    };
    assert!(vms[0].publish(&mut racing, &alice, Answer::Allowed, NOW + secs(300), NOW));
    drop(racing);
    assert_eq!(
        vms[1].lookup(&store, &alice, NOW),
        allowed_until(NOW + secs(300))
    );
    assert_eq!(
        vms[0].lookup(&store, &bob, NOW),
        Lookup::Answer {
            answer: Answer::Denied {
                reason: Some("no binding".into())
            },
            expires: NOW + secs(30)
        }
    );
}

#[test]
fn a_stale_lease_is_taken_over() {
    let (mut shared, vms) = workers(2, 64);
    let digest = access(&vms[0], &shared, &spec("alice@example.com", "iris"));
    assert_eq!(vms[0].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
    // VM 1 never answers; at the lease's end it counts for nothing.
    let later = NOW + LEASE;
    assert_eq!(vms[1].lookup(&shared, &digest, later), Lookup::Vacant);
    assert_eq!(vms[1].lease(&mut shared, &digest, later, LEASE), Claim::Won);
    assert_eq!(
        vms[0].lookup(&shared, &digest, later),
        Lookup::Leased {
            until: later + LEASE
        }
    );
    assert_eq!(
        vms[0].lease(&mut shared, &digest, later, LEASE),
        Claim::Held {
            until: later + LEASE
        },
        "the old holder does not hold it any more"
    );
}

#[test]
fn a_released_lease_lets_the_next_vm_ask() {
    let (mut shared, vms) = workers(2, 64);
    let digest = access(&vms[0], &shared, &spec("alice@example.com", "iris"));
    assert_eq!(vms[0].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
    vms[1].release(&mut shared, &digest);
    assert!(
        matches!(vms[1].lookup(&shared, &digest, NOW), Lookup::Leased { .. }),
        "only the holder releases"
    );
    vms[0].release(&mut shared, &digest);
    assert_eq!(vms[1].lookup(&shared, &digest, NOW), Lookup::Vacant);
    assert_eq!(vms[1].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
}

#[test]
fn an_expired_answer_is_ignored_and_its_slot_reused() {
    let (mut shared, vms) = workers(2, WAYS);
    let digest = access(&vms[0], &shared, &spec("alice@example.com", "iris"));
    let expires = NOW + secs(30);
    let denied = Answer::Denied { reason: None };
    assert!(vms[0].publish(&mut shared, &digest, denied.clone(), expires, NOW));
    assert_eq!(
        vms[1].lookup(&shared, &digest, expires - Duration::from_millis(1)),
        Lookup::Answer {
            answer: denied,
            expires
        }
    );
    assert_eq!(vms[1].lookup(&shared, &digest, expires), Lookup::Vacant);
    assert!(
        !vms[1].publish(&mut shared, &digest, Answer::Allowed, expires, expires),
        "an answer that ends as it is published is not shared"
    );
    assert_eq!(
        vms[1].lease(&mut shared, &digest, expires, LEASE),
        Claim::Won
    );
    assert!(vms[1].publish(
        &mut shared,
        &digest,
        Answer::Allowed,
        expires + secs(300),
        expires
    ));
    let entries = (0..WAYS)
        .filter(|index| {
            shared
                .get(&slot_key(*index))
                .is_some_and(|(bytes, _)| slot::Entry::decode(&bytes).is_some())
        })
        .count();
    assert_eq!(entries, 1, "the review's own slot was reused");
}

/// Every review that shares a bucket with others, in every order of
/// publishing, evicting and looking up: a look-up gives the review's own
/// answer or nothing.
#[test]
fn reviews_that_share_slots_never_get_each_others_answers() {
    let (mut shared, vms) = workers(3, WAYS);
    let users = 40;
    let answer_of = |user: usize| {
        if user.is_multiple_of(2) {
            Answer::Allowed
        } else {
            Answer::Denied {
                reason: Some(format!("user {user} is not bound")),
            }
        }
    };
    let digests: Vec<ReviewDigest> = (0..users)
        .map(|user| {
            access(
                &vms[0],
                &shared,
                &spec(&format!("user-{user}@example.com"), "iris"),
            )
        })
        .collect();
    let mut hits = 0;
    for (user, digest) in digests.iter().enumerate() {
        let vm = &vms[user % vms.len()];
        let now = NOW + secs(user as u64);
        if user % 3 == 0 {
            // Once the bucket is full of live answers, no lease pushes one out.
            let expected = if user < WAYS {
                Claim::Won
            } else {
                Claim::Alone
            };
            assert_eq!(vm.lease(&mut shared, digest, now, LEASE), expected);
        }
        assert!(vm.publish(&mut shared, digest, answer_of(user), now + secs(600), now));
        for (other, other_digest) in digests.iter().enumerate().take(user + 1) {
            match vms[other % vms.len()].lookup(&shared, other_digest, now) {
                Lookup::Answer { answer, .. } => {
                    assert_eq!(answer, answer_of(other), "user {other} after user {user}");
                    hits += 1;
                }
                Lookup::Vacant => assert!(other + WAYS <= user, "user {other} evicted too early"),
                Lookup::Leased { .. } => panic!("user {other}: a lease nobody holds"),
            }
        }
    }
    // The last WAYS reviews are all still there: eviction takes the oldest.
    assert!(hits >= users * WAYS - WAYS * WAYS, "{hits} hits");
    // A user with the same attributes but other groups is another review.
    let other_groups = spec("user-0@example.com", "iris").replace("team-a", "team-b");
    let digest = access(&vms[0], &shared, &other_groups);
    assert_eq!(
        vms[0].lookup(&shared, &digest, NOW + secs(60)),
        Lookup::Vacant
    );
}

#[test]
fn a_bucket_full_of_live_answers_lends_no_lease_but_takes_answers() {
    let (mut shared, vms) = workers(1, WAYS);
    let table = &vms[0];
    for user in 0..WAYS {
        let digest = access(table, &shared, &spec(&format!("u{user}"), "iris"));
        let expires = NOW + secs(100 + user as u64);
        assert!(table.publish(&mut shared, &digest, Answer::Allowed, expires, NOW));
    }
    let newcomer = access(table, &shared, &spec("newcomer", "iris"));
    assert_eq!(
        table.lease(&mut shared, &newcomer, NOW, LEASE),
        Claim::Alone
    );
    publish_allowed_and_read(table, table, &mut shared, &newcomer);
    let first = access(table, &shared, &spec("u0", "iris"));
    assert_eq!(
        table.lookup(&shared, &first, NOW),
        Lookup::Vacant,
        "the answer that ended first made room"
    );
}

/// 250 reviews over 1,024 buckets of four put five in one bucket in about one
/// gateway in 170 (simulated), and the fifth was asked by every worker alone;
/// with buckets of eight, nine in one bucket is about one in 700,000.
#[test]
fn five_reviews_in_one_bucket_of_the_default_table_each_get_a_lease() {
    let (mut shared, vms) = workers(2, DEFAULT_SLOTS);
    let table = &vms[0];
    let mut by_bucket: std::collections::HashMap<usize, Vec<ReviewDigest>> = Default::default();
    let crowd = (0..)
        .find_map(|user| {
            let digest = access(table, &shared, &spec(&format!("user-{user}"), "iris"));
            let same = by_bucket.entry(table.bucket_index(&digest)).or_default();
            same.push(digest);
            (same.len() == 5).then(|| same.clone())
        })
        .unwrap();
    for (index, digest) in crowd.iter().enumerate() {
        assert_eq!(
            table.lease(&mut shared, digest, NOW, LEASE),
            Claim::Won,
            "review {index} of five in one bucket"
        );
        assert_eq!(
            vms[1].lease(&mut shared, digest, NOW, LEASE),
            Claim::Held { until: NOW + LEASE },
            "review {index}: the other worker waits"
        );
    }
}

#[test]
fn an_answer_never_pushes_out_a_live_lease() {
    let (mut shared, vms) = workers(2, WAYS);
    let leases: Vec<ReviewDigest> = (0..WAYS)
        .map(|user| {
            let digest = access(&vms[0], &shared, &spec(&format!("u{user}"), "iris"));
            assert_eq!(vms[0].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
            digest
        })
        .collect();
    // Asked alone (no slot for its lease), answered: nothing is pushed out
    // for it, or the others waiting on those leases would ask again.
    let newcomer = access(&vms[1], &shared, &spec("newcomer", "iris"));
    assert_eq!(
        vms[1].lease(&mut shared, &newcomer, NOW, LEASE),
        Claim::Alone
    );
    assert!(!vms[1].publish(
        &mut shared,
        &newcomer,
        Answer::Allowed,
        NOW + secs(300),
        NOW
    ));
    for digest in &leases {
        assert_eq!(
            vms[1].lookup(&shared, digest, NOW),
            Lookup::Leased { until: NOW + LEASE }
        );
    }
    // Once one of them is answered, an answer may make room in its place.
    assert!(vms[0].publish(
        &mut shared,
        &leases[0],
        Answer::Allowed,
        NOW + secs(60),
        NOW
    ));
    publish_allowed_and_read(&vms[1], &vms[0], &mut shared, &newcomer);
    for digest in &leases[1..] {
        assert_eq!(
            vms[1].lookup(&shared, digest, NOW),
            Lookup::Leased { until: NOW + LEASE }
        );
    }
}

#[test]
fn the_footprint_is_the_slot_count_whatever_the_traffic() {
    let slots = 64;
    let (mut shared, vms) = workers(2, slots);
    for review in 0..10_000u64 {
        let vm = &vms[(review % 2) as usize];
        let digest = access(vm, &shared, &spec(&format!("user-{review}"), "iris"));
        let now = NOW + Duration::from_millis(review);
        let _ = vm.lease(&mut shared, &digest, now, LEASE);
        assert!(vm.publish(&mut shared, &digest, Answer::Allowed, now + secs(300), now));
    }
    let keys: Vec<String> = (0..slots).map(slot_key).collect();
    for key in &keys {
        let (bytes, _) = shared.get(key).unwrap();
        assert!(bytes.len() <= MAX_SLOT_BYTES);
    }
    assert!(
        shared.get(&slot_key(slots)).is_none(),
        "no slot past the table"
    );
    // An answer too large for a slot is not shared.
    let digest = vms[0].digest(
        &shared,
        &Review::Token {
            token: "t",
            audiences: &[],
        },
    );
    let crowd = Answer::Authenticated {
        user: "system:serviceaccount:ns:runner".into(),
        groups: (0..500).map(|n| format!("group-{n}")).collect(),
    };
    assert!(!vms[0].publish(&mut shared, &digest.unwrap(), crowd, NOW + secs(60), NOW));
}

#[test]
fn unreadable_slots_are_vacant_and_overwritten() {
    let (mut shared, vms) = workers(1, WAYS);
    let table = &vms[0];
    let digest = access(table, &shared, &spec("alice@example.com", "iris"));
    let other_kind = format!(
        r#"{{"state":"answered","digest":"{}","answer":{{"kind":"authenticated","user":"root","groups":[]}},"expires_ms":{}}}"#,
        digest.encode(),
        u64::MAX
    );
    let short_digest = format!(
        r#"{{"state":"answered","digest":"{}","answer":{{"kind":"allowed"}},"expires_ms":{}}}"#,
        &digest.encode()[..20],
        u64::MAX
    );
    let garbage: [&[u8]; 4] = [
        b"\xff\xfe not json",
        other_kind.as_bytes(),
        short_digest.as_bytes(),
        &[b'{'; MAX_SLOT_BYTES + 1],
    ];
    // Every slot of the bucket unreadable.
    for (index, bytes) in garbage.iter().cycle().take(WAYS).enumerate() {
        shared.set(&slot_key(index), bytes, None).unwrap();
    }
    assert_eq!(table.lookup(&shared, &digest, NOW), Lookup::Vacant);
    assert_eq!(table.lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
    assert!(table.publish(&mut shared, &digest, Answer::Allowed, NOW + secs(60), NOW));
    assert_eq!(
        table.lookup(&shared, &digest, NOW),
        allowed_until(NOW + secs(60))
    );
}

#[test]
fn token_reviews_are_told_apart_by_token_audiences_and_kind() {
    let (mut shared, vms) = workers(2, 64);
    let kfp = ["pipelines.kubeflow.org".to_string()];
    let token_review = |token, audiences| {
        vms[0]
            .digest(&shared, &Review::Token { token, audiences })
            .unwrap()
    };
    let digest = token_review("sa-token", &kfp);
    assert_ne!(digest, token_review("sa-token", &[]));
    assert_ne!(digest, token_review("sa-token2", &kfp));
    // Length prefixes: moving a byte from the token to an audience changes the digest.
    assert_ne!(
        token_review("ab", &["c".to_string()]),
        token_review("a", &["bc".to_string()])
    );
    assert!(
        !vms[0].publish(&mut shared, &digest, Answer::Allowed, NOW + secs(60), NOW),
        "a SubjectAccessReview answer is no TokenReview answer"
    );
    let runner = Answer::Authenticated {
        user: "system:serviceaccount:ns:runner".into(),
        groups: vec!["system:serviceaccounts".into()],
    };
    assert_eq!(vms[1].lease(&mut shared, &digest, NOW, LEASE), Claim::Won);
    assert!(vms[1].publish(&mut shared, &digest, runner.clone(), NOW + secs(120), NOW));
    assert_eq!(
        vms[0].lookup(&shared, &digest, NOW),
        Lookup::Answer {
            answer: runner,
            expires: NOW + secs(120)
        }
    );
    // The stored slot holds the token's digest, never the token.
    let stored: Vec<u8> = (0..64)
        .filter_map(|index| shared.get(&slot_key(index)))
        .flat_map(|(bytes, _)| bytes)
        .collect();
    assert!(!String::from_utf8_lossy(&stored).contains("sa-token"));
}

#[test]
fn another_scope_shares_nothing() {
    let (mut shared, vms) = workers(1, 64);
    let review = spec("alice@example.com", "iris");
    let digest = access(&vms[0], &shared, &review);
    assert!(vms[0].publish(&mut shared, &digest, Answer::Allowed, NOW + secs(60), NOW));
    let elsewhere = SharedDecisions::new(9, 64, "outbound|443||other-apiserver");
    let theirs = access(&elsewhere, &shared, &review);
    assert_ne!(theirs, digest);
    assert_eq!(elsewhere.lookup(&shared, &theirs, NOW), Lookup::Vacant);
}

/// Envoy's shared data as threads see it: each get or set is atomic, the
/// steps between them are not.
#[cfg(not(target_arch = "wasm32"))]
struct Threaded<'a>(&'a std::sync::Mutex<MemorySharedData>);

#[cfg(not(target_arch = "wasm32"))]
impl SharedData for Threaded<'_> {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.0.lock().unwrap().get(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), WriteError> {
        self.0.lock().unwrap().set(key, value, cas)
    }
}

/// Eight workers on eight threads go through the same 200 reviews at once
/// (how often they meet depends on the scheduler; the property does not),
/// each asking the API server only when it wins the lease: every review is
/// asked exactly once, and every worker ends with every review's own answer.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn workers_on_threads_ask_each_review_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    const THREADS: u64 = 8;
    const REVIEWS: usize = 200;
    let (prepared, _) = workers(1, DEFAULT_SLOTS);
    let store = Mutex::new(prepared);
    let asked: Vec<AtomicUsize> = (0..REVIEWS).map(|_| AtomicUsize::new(0)).collect();
    let answer_of = |review: usize| Answer::Denied {
        reason: Some(format!("review {review}")),
    };
    let barrier = std::sync::Barrier::new(THREADS as usize);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, asked, barrier) = (&store, &asked, &barrier);
            scope.spawn(move || {
                let mut shared = Threaded(store);
                let table = SharedDecisions::new(100 + thread, DEFAULT_SLOTS, SCOPE);
                // Same order, same start: they race for every review.
                barrier.wait();
                let mut pending: Vec<usize> = (0..REVIEWS).collect();
                while !pending.is_empty() {
                    pending.retain(|review| {
                        let spec = spec(&format!("user-{review}"), "iris");
                        let digest = table
                            .digest(&shared, &Review::Access { spec: &spec })
                            .unwrap();
                        match table.lookup(&shared, &digest, NOW) {
                            Lookup::Answer { answer, .. } => {
                                assert_eq!(answer, answer_of(*review));
                                return false;
                            }
                            Lookup::Leased { .. } => return true,
                            Lookup::Vacant => {}
                        }
                        match table.lease(&mut shared, &digest, NOW, LEASE) {
                            Claim::Won => {
                                asked[*review].fetch_add(1, Ordering::SeqCst);
                                let expires = NOW + secs(300);
                                assert!(table.publish(
                                    &mut shared,
                                    &digest,
                                    answer_of(*review),
                                    expires,
                                    NOW
                                ));
                                false
                            }
                            Claim::Alone => panic!("review {review}: no slot for a lease"),
                            Claim::Held { .. } | Claim::Answered { .. } => true,
                        }
                    });
                }
            });
        }
    });
    let counts: Vec<usize> = asked.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    assert!(
        counts.iter().all(|n| *n == 1),
        "asks per review: {counts:?}"
    );
}
