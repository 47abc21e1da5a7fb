//! Signatures checked by the host: Envoy's `verify_signature` foreign function
//! runs BoringSSL's `EVP_DigestVerify`, about ten times faster than kfauth's
//! own code in Wasm. Only RS256/384/512 (PKCS#1 v1.5: the host has no PSS
//! padding) and ES256/ES384 go there; PS*, ES512 and EdDSA stay in Wasm.
//!
//! The core sees the host through [`SignatureHost`]; the host layer implements
//! it with the foreign call (`host/signature.rs`), tests with RustCrypto. A key
//! set carries the host it may use ([`crate::jwks::KeySet::use_signature_host`]),
//! chosen once at configuration by [`choose`] (from `Broker::configure`).

pub mod der;
pub mod known_answer;
pub mod wire;

use serde::Deserialize;

use crate::config_field::ConfigError;

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

/// The host chosen for a configuration, and the log line that says so.
#[derive(Debug)]
pub struct Choice {
    pub host: Option<&'static dyn SignatureHost>,
    pub note: String,
}

/// Applies `signatureVerification`: runs the known-answer check on `host`
/// unless the mode is `wasm`. `break_check` spoils the check's good
/// signatures (the test-only `testOnlyBreakSignatureCheck`), so that a host
/// failing it can be shown in a real Envoy.
pub fn choose(
    mode: SignatureVerification,
    host: &'static dyn SignatureHost,
    break_check: bool,
) -> Result<Choice, ConfigError> {
    if mode == SignatureVerification::Wasm {
        return Ok(Choice {
            host: None,
            note: "signatures: verified in Wasm (signatureVerification: wasm)".into(),
        });
    }
    match known_answer::check(host, break_check) {
        Ok(()) => Ok(Choice {
            host: Some(host),
            note: "signatures: RS256/384/512 and ES256/384 verified by Envoy's verify_signature"
                .into(),
        }),
        Err(problem) if mode == SignatureVerification::Auto => Ok(Choice {
            host: None,
            note: format!(
                "signatures: verified in Wasm, Envoy's verify_signature failed its known-answer check ({problem})"
            ),
        }),
        Err(problem) => Err(ConfigError::new(
            "signatureVerification",
            format!("`host`, but Envoy's verify_signature failed its known-answer check ({problem})"),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests;
