//! The arguments of the `verify_signature` probes: a serialized
//! `VerifySignatureArguments` (envoyproxy/envoy
//! `source/extensions/common/wasm/ext/verify_signature.proto`: 1 hash_function,
//! 2 public_key as DER SubjectPublicKeyInfo, 3 signature, 4 text) over a
//! 900-byte text, the size of a Kubeflow ID token's signing input, with the
//! testkit's RSA-2048 key. Three versions split what one call costs Envoy:
//! no key (the call and the message's parsing; Envoy answers BAD_ARGUMENT),
//! a signature one byte short (plus importing the key and hashing the text;
//! BoringSSL refuses the length before any arithmetic), and a good RS256
//! signature (plus the RSA arithmetic).

use kfauth_testkit::forge::Signer;

/// Which `verify_signature` call a probe makes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VerifyCall {
    NoKey,
    ShortSignature,
    Good,
}

fn put_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    // Key: field number, wire type 2 (length-delimited); then the length as a varint.
    out.push(field << 3 | 2);
    let mut length = bytes.len();
    while length >= 0x80 {
        out.push((length & 0x7f) as u8 | 0x80);
        length >>= 7;
    }
    out.push(length as u8);
    out.extend_from_slice(bytes);
}

pub fn arguments(call: VerifyCall) -> Vec<u8> {
    let signer = Signer::shared();
    let text = vec![b'e'; 900];
    let mut signature = signer.signature("RS256", &text);
    let key = match call {
        VerifyCall::NoKey => Vec::new(),
        VerifyCall::ShortSignature | VerifyCall::Good => signer.rsa_public_der(),
    };
    if call == VerifyCall::ShortSignature {
        signature.pop();
    }
    let mut out = Vec::new();
    put_field(&mut out, 1, b"sha256");
    if !key.is_empty() {
        put_field(&mut out, 2, &key);
    }
    put_field(&mut out, 3, &signature);
    put_field(&mut out, 4, &text);
    out
}

/// `bytes` as a WebAssembly text string literal.
pub fn wat_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("\\{byte:02x}")).collect()
}
