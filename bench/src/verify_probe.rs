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
    /// The good call made once per request instead of eight times: what it
    /// costs between Envoy's own work rather than right after itself.
    GoodOnce,
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
        VerifyCall::ShortSignature | VerifyCall::Good | VerifyCall::GoodOnce => {
            signer.rsa_public_der()
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields of a serialized message whose lengths fit in two varint bytes.
    fn fields(mut message: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let [key, rest @ ..] = message {
            let (length, rest) = match rest {
                [low, high, rest @ ..] if low & 0x80 != 0 => {
                    (usize::from(low & 0x7f) | usize::from(*high) << 7, rest)
                }
                [length, rest @ ..] => (usize::from(*length), rest),
                [] => panic!("cut short"),
            };
            out.push((key >> 3, rest[..length].to_vec()));
            message = &rest[length..];
        }
        out
    }

    #[test]
    fn the_three_calls_differ_only_where_they_should() {
        let good = fields(&arguments(VerifyCall::Good));
        let short = fields(&arguments(VerifyCall::ShortSignature));
        let no_key = fields(&arguments(VerifyCall::NoKey));

        let numbers =
            |message: &[(u8, Vec<u8>)]| message.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(numbers(&good), [1, 2, 3, 4]);
        assert_eq!(numbers(&short), [1, 2, 3, 4]);
        assert_eq!(numbers(&no_key), [1, 3, 4]);
        assert_eq!(good[0].1, b"sha256");
        assert_eq!(good[1].1, Signer::shared().rsa_public_der());
        assert_eq!(good[2].1.len(), 256);
        assert_eq!(short[2].1, good[2].1[..255]);
        assert_eq!(good[3].1.len(), 900);
    }

    #[test]
    fn wat_strings_escape_every_byte() {
        assert_eq!(wat_string(&[0, 0x22, 0xff]), "\\00\\22\\ff");
    }
}
