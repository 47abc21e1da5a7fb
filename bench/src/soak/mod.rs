//! `make soak`: kfauth under a fixed request rate for minutes, through a key
//! rotation, a key removal and an identity-provider outage, checking every
//! answer and Envoy's memory.
//!
//! | module | concept |
//! | --- | --- |
//! | [`tokens`] | key generations and the tokens minted from them |
//! | [`timeline`] | when events happen, which tokens circulate |
//! | [`driver`] | the fixed-rate load and the per-answer identity check |
//! | [`verdict`] | what the documented outage policy allows |
//! | [`rss`] | Envoy's resident memory |

pub mod driver;
pub mod rss;
pub mod timeline;
pub mod tokens;
pub mod verdict;
