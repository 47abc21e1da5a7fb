//! Support code for the bench crate's binaries. `kfauth-bench` (src/main.rs)
//! builds its Wasm baseline from [`empty_filter`], and so does `empty-filter`
//! (src/bin/empty-filter.rs, for `make floor`); `soak` (src/bin/soak.rs) is
//! built from [`soak`].

pub mod empty_filter;
pub mod soak;
pub mod verify_probe;
