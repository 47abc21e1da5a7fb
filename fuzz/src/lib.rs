//! Shared support for kfauth's fuzz targets: fixed keys, a configuration that
//! trusts some of them, genuinely signed seed tokens, the token mutations,
//! and the cookie targets' harness.

pub mod cookies;
pub mod keys;
pub mod tokens;
