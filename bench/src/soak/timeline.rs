//! When things happen during a soak of `seconds` seconds, as offsets from the
//! start of the load, and which tokens circulate at a given moment.
//!
//! ```text
//! 0 ── warm-up ── start RSS ── rotate (g2 published beside g1; new tokens g2)
//!   ── remove g1 (g1 tokens become "retired": must be refused once kfauth
//!      has fetched the set without it) ── middle RSS, IdP down ── the IdP
//!      rotates in g3 while down (g3 tokens issued) ── IdP back (g2+g3)
//!   ── end RSS
//! ```

use std::time::Duration;

/// Offsets of the events from the start of the load.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    pub warmup_end: Duration,
    pub rotate: Duration,
    pub remove_old: Duration,
    pub outage_start: Duration,
    pub rotate_in_outage: Duration,
    pub outage_end: Duration,
    pub end: Duration,
}

impl Timeline {
    /// The schedule for a run of `seconds` with an outage of up to
    /// `outage_seconds` (at most a quarter of the run).
    pub fn new(seconds: u64, outage_seconds: u64) -> Timeline {
        let at = |fraction: f64| Duration::from_secs_f64(seconds as f64 * fraction);
        let warmup = (seconds / 10).clamp(10, 30);
        let outage = Duration::from_secs(outage_seconds.min(seconds / 4).max(1));
        let outage_start = at(0.5);
        Timeline {
            warmup_end: Duration::from_secs(warmup),
            rotate: at(0.25),
            remove_old: at(0.35),
            outage_start,
            rotate_in_outage: outage_start + outage / 2,
            outage_end: outage_start + outage,
            end: Duration::from_secs(seconds),
        }
    }
}

/// What one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// `valid[index]` of generation `generation` (0-based), published.
    Valid { generation: usize, index: usize },
    /// A generation-0 token after its key was removed from the JWKS.
    Retired { index: usize },
    /// `invalid[index]` of generation `generation`.
    Invalid { generation: usize, index: usize },
}

/// Chooses a request's token at offset `at`, from a uniform random `draw`:
/// 90% valid tokens of the generations in circulation, 7% invalid, and, once
/// generation 0 is removed, 3% of its tokens.
pub fn pick(timeline: &Timeline, at: Duration, draw: u64, valid: usize, invalid: usize) -> Pick {
    let share = draw % 100;
    let index = (draw / 100) as usize;
    let circulating: &[usize] = if at < timeline.rotate {
        &[0]
    } else if at < timeline.remove_old {
        &[0, 1]
    } else if at < timeline.rotate_in_outage {
        &[1]
    } else {
        &[1, 2]
    };
    let newest = circulating.last().copied().unwrap_or(0);
    let retired = at >= timeline.remove_old;
    match share {
        0..=6 => Pick::Invalid {
            generation: newest,
            index: index % invalid.max(1),
        },
        7..=9 if retired => Pick::Retired {
            index: index % valid.max(1),
        },
        _ => Pick::Valid {
            generation: circulating
                .get(index % circulating.len())
                .copied()
                .unwrap_or(0),
            index: (index / circulating.len()) % valid.max(1),
        },
    }
}
