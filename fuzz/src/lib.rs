//! Shared support for kfauth's fuzz targets: fixed keys, a configuration that
//! trusts some of them, genuinely signed seed tokens, and the token mutations.

pub mod keys;
pub mod tokens;
