//! The two protobuf messages of Envoy's `verify_signature` foreign function,
//! written and read by hand (proto3 wire format: a varint key
//! `field << 3 | wire type`, then a varint or a varint length and bytes). Four
//! fields out and two back do not pay for a protobuf crate in the module.
//!
//! envoyproxy/envoy `source/extensions/common/wasm/ext/verify_signature.proto`:
//! `VerifySignatureArguments { string hash_function = 1; bytes public_key = 2;
//! bytes signature = 3; bytes text = 4; string public_key_pem = 5; }` and
//! `VerifySignatureResult { bool result = 1; string error = 2; }`.

use super::HashFunction;

const VARINT: u8 = 0;
const LENGTH_DELIMITED: u8 = 2;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push(field << 3 | LENGTH_DELIMITED);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A serialized `VerifySignatureArguments`, the public key as DER
/// `SubjectPublicKeyInfo` (`public_key`, never `public_key_pem`).
pub fn arguments(hash: HashFunction, public_key: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        public_key
            .len()
            .saturating_add(signature.len())
            .saturating_add(text.len())
            .saturating_add(32),
    );
    put_bytes(&mut out, 1, hash.name().as_bytes());
    put_bytes(&mut out, 2, public_key);
    put_bytes(&mut out, 3, signature);
    put_bytes(&mut out, 4, text);
    out
}

/// Reads one varint at the front of `input`; `None` if it is cut short or
/// longer than ten bytes.
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// `result` of a serialized `VerifySignatureResult` (proto3: an absent field
/// is false, the last occurrence wins); `None` when the bytes are not one.
pub fn result(mut message: &[u8]) -> Option<bool> {
    let mut valid = false;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        match (key >> 3, (key & 7) as u8) {
            (1, VARINT) => valid = take_varint(&mut message)? != 0,
            (_, VARINT) => {
                take_varint(&mut message)?;
            }
            (_, LENGTH_DELIMITED) => {
                let length = usize::try_from(take_varint(&mut message)?).ok()?;
                message = message.get(length..)?;
            }
            _ => return None,
        }
    }
    Some(valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn arguments_are_four_length_delimited_fields() {
        let bytes = arguments(HashFunction::Sha384, &[0x30; 3], &[0xab; 200], b"a.b");
        let mut expected = vec![0x0a, 6];
        expected.extend_from_slice(b"sha384");
        expected.extend_from_slice(&[0x12, 3, 0x30, 0x30, 0x30]);
        // 200 = 0xc8: a two-byte varint, 0xc8 0x01.
        expected.extend_from_slice(&[0x1a, 0xc8, 0x01]);
        expected.extend_from_slice(&[0xab; 200]);
        expected.extend_from_slice(&[0x22, 3, b'a', b'.', b'b']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn varints_round_trip() {
        for value in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut input = out.as_slice();
            assert_eq!(take_varint(&mut input), Some(value));
            assert!(input.is_empty());
        }
        assert_eq!(take_varint(&mut &[0x80, 0x80][..]), None);
        assert_eq!(take_varint(&mut &[0xff; 11][..]), None);
    }

    #[test]
    fn results_are_read_as_envoy_writes_them() {
        // result: true, error "" (proto3 leaves the empty string out).
        assert_eq!(result(&[0x08, 0x01]), Some(true));
        // result: false (left out), error "Failed to verify digest. Error code: 0".
        let mut refused = vec![0x12, 38];
        refused.extend_from_slice(b"Failed to verify digest. Error code: 0");
        assert_eq!(result(&refused), Some(false));
        assert_eq!(result(&[]), Some(false));
        // Both fields, error first.
        assert_eq!(result(&[0x12, 1, b'x', 0x08, 0x01]), Some(true));
        // Not a VerifySignatureResult: cut short, or a wire type it never uses.
        assert_eq!(result(&[0x08]), None);
        assert_eq!(result(&[0x12, 5, b'x']), None);
        assert_eq!(result(&[0x0d, 1, 0, 0, 0]), None);
    }
}
