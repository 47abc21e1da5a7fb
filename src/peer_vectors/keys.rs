//! The peer's EC keys: google/jwt_verify_lib (commit b59e807),
//! `test/verify_jwk_ec_test.cc`, as printed there (private halves included;
//! they guard nothing). One copy for the unit tests (`peer_vectors`) and the
//! end-to-end suite (`tests/peer_key_sets.rs`, which includes this file by path).

pub const P256_X: &str = "EB54wykhS7YJFD6RYJNnwbWEz3cI7CF5bCDTXlrwI5k";
pub const P256_Y: &str = "92bCBTvMFQ8lKbS2MbgjT3YfmYo6HnPEE2tsAqWUJw8";
pub const P384_X: &str = "yY8DWcyWlrr93FTrscI5Ydz2NC7emfoKYHJLX2dr3cSgfw0GuxAkuQ5nBMJmVV5g";
pub const P384_Y: &str = "An5wVxEfksDOa_zvSHHGkeYJUfl8y11wYkOlFjBt9pOCw5-RlfZgPOa3pbmUquxZ";
pub const P521_X: &str =
    "Abijiex7rz7t-_Zj_E6Oo0OXe9C_-MCSD-OWio15ATQGjH9WpbWjN62ZqrrU_nwJiqqwx6ZsYKhUc_J3PRaMbdVC";
pub const P521_Y: &str =
    "FxaljCIuoVEA7PJIaDPJ5ePXtZ0hkinT1B_bQ91mShCiR_43Whsn1P7Gz30WEnLuJs1SGVz1oT4lIRUYni2OfIk";
/// The private scalars of the P-256 and P-521 keys above (from the SEC1 PEMs
/// in `verify_jwk_ec_test.cc`).
pub const P256_D: &str = "ec9ff7a78a74579215878788cd3dbc6032973fbf6ae697284afe7c166cb05b09";
pub const P521_D: &str = "012a51bb18f228a90ba3247c1edb5ae7b1978fc92172778e473dedc57a5760650107a9c522660a5b0608ae60c3c7cad11aa218f5c82e60c8e3ac39f82c598daa4ac5";

/// The bytes of a hex string (the private scalars above).
pub fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
        .collect()
}
