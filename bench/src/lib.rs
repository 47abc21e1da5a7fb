//! Support code for the bench crate's binaries. `kfauth-bench` (src/main.rs)
//! is self-contained; `soak` (src/bin/soak.rs) is built from [`soak`].

pub mod soak;
