//! Signatures checked by the host: Envoy's `verify_signature` foreign function
//! runs BoringSSL's `EVP_DigestVerify`, about ten times faster than kfauth's
//! own code in Wasm. Only RS256/384/512 (PKCS#1 v1.5: the host has no PSS
//! padding) and ES256/ES384 go there; PS*, ES512 and EdDSA stay in Wasm.
//!
//! The core sees the host through [`SignatureHost`]; the host layer implements
//! it with the foreign call (`host/signature.rs`), tests with RustCrypto. A key
//! set carries the host it may use ([`crate::jwks::KeySet::use_signature_host`]),
//! chosen once at configuration by
//! [`crate::keystore::signature_choice::choose`].

pub mod der;
pub mod wire;

use serde::Deserialize;

/// The digest of a host check, by the name Envoy's `getHashFunction` reads
/// (envoyproxy/envoy `source/common/crypto/utility_impl.cc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Sha256 => "sha256",
            HashFunction::Sha384 => "sha384",
            HashFunction::Sha512 => "sha512",
        }
    }
}

/// What the host can check: `public_key` is DER `SubjectPublicKeyInfo`, an
/// ECDSA `signature` is DER. `Some(valid)` is the host's answer; `None` means
/// it gave none (no such function, a call that failed, an unreadable answer),
/// and the caller checks the signature itself.
pub trait SignatureHost: Sync + std::fmt::Debug {
    fn verify(
        &self,
        hash: HashFunction,
        public_key: &[u8],
        signature: &[u8],
        text: &[u8],
    ) -> Option<bool>;
}

/// `signatureVerification`: who checks RS* and ES256/ES384 signatures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVerification {
    /// The host when it passes the known-answer check, else Wasm.
    #[default]
    Auto,
    /// The host; a configuration whose host fails the check is refused.
    Host,
    /// kfauth's own code in Wasm, always.
    Wasm,
}

#[cfg(test)]
pub(crate) mod tests;
