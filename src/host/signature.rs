//! [`SignatureHost`] by Envoy's `verify_signature` foreign function
//! (envoyproxy/envoy `source/extensions/common/wasm/foreign.cc`, since PR
//! 32127): it parses a `VerifySignatureArguments`, imports the DER key with
//! BoringSSL's `EVP_parse_public_key`, runs `EVP_DigestVerify` (PKCS#1 v1.5
//! for RSA keys) and answers a `VerifySignatureResult`; an unreadable key or
//! message is BAD_ARGUMENT, and a missing function NOT_FOUND.

use crate::proxy_abi;
use crate::signature_host::{wire, HashFunction, SignatureHost};

#[derive(Debug)]
pub struct EnvoySignatures;

pub static ENVOY: EnvoySignatures = EnvoySignatures;

impl SignatureHost for EnvoySignatures {
    fn verify(
        &self,
        hash: HashFunction,
        key: &[u8],
        signature: &[u8],
        text: &[u8],
    ) -> Option<bool> {
        let arguments = wire::arguments(hash, key, signature, text);
        // An empty answer is a message with every field at its default: `false`.
        let answer = proxy_abi::call_foreign_function("verify_signature", &arguments).ok()?;
        wire::result(&answer)
    }
}
