//! The Proxy-Wasm ABI's serialized map of header pairs (ABI v0.2.1,
//! <https://github.com/proxy-wasm/spec/tree/main/abi-versions/v0.2.1>, "Serialization"):
//! the number of pairs N as a little-endian u32, then N pairs of little-endian
//! u32 sizes (name, value), then each name and each value in order, each
//! followed by a NUL byte that its size does not count.
//!
//! The host writes the bytes we decode, so decoding checks every bound and
//! answers `Err` on anything malformed: in the Wasm VM a panic is a trap.

use std::ops::Range;

/// Why a serialized map could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairsError {
    /// Shorter than its count and sizes say.
    Truncated,
    /// A name or value not followed by its NUL byte.
    MissingNul,
    /// Bytes after the last pair.
    TrailingBytes,
    /// A count or size that does not fit the format's u32 (encoding only).
    TooLarge,
}

impl std::fmt::Display for PairsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PairsError::Truncated => "header map shorter than its sizes say",
            PairsError::MissingNul => "header map entry without its NUL byte",
            PairsError::TrailingBytes => "bytes after the header map's last pair",
            PairsError::TooLarge => "header map too large for u32 sizes",
        })
    }
}

impl std::error::Error for PairsError {}

/// Serializes `pairs` for the host (local replies, callout headers).
pub fn encode<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> Result<Vec<u8>, PairsError> {
    let too_large = |_| PairsError::TooLarge;
    let mut size: usize = 4;
    for (name, value) in pairs {
        size = size
            .checked_add(10)
            .and_then(|size| size.checked_add(name.as_ref().len()))
            .and_then(|size| size.checked_add(value.as_ref().len()))
            .ok_or(PairsError::TooLarge)?;
    }
    let mut bytes = Vec::with_capacity(size);
    bytes.extend_from_slice(&u32::try_from(pairs.len()).map_err(too_large)?.to_le_bytes());
    for (name, value) in pairs {
        let name_size = u32::try_from(name.as_ref().len()).map_err(too_large)?;
        let value_size = u32::try_from(value.as_ref().len()).map_err(too_large)?;
        bytes.extend_from_slice(&name_size.to_le_bytes());
        bytes.extend_from_slice(&value_size.to_le_bytes());
    }
    for (name, value) in pairs {
        bytes.extend_from_slice(name.as_ref());
        bytes.push(0);
        bytes.extend_from_slice(value.as_ref());
        bytes.push(0);
    }
    Ok(bytes)
}

/// Where one pair's name and value lie in the serialized map (byte offsets,
/// their NULs left out).
pub type PairSpan = (Range<usize>, Range<usize>);

/// Reads a serialized map: where each pair's name and value lie in `bytes`,
/// in order, so that a reader can keep the one buffer and read its pairs
/// from it (`HeaderList::from_map`). No bytes at all is the empty map (hosts
/// return nothing for an empty map).
pub fn spans(bytes: &[u8]) -> Result<Vec<PairSpan>, PairsError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (count, rest) = take_u32(bytes)?;
    let count = usize::try_from(count).map_err(|_| PairsError::Truncated)?;
    // The sizes alone need 8 bytes per pair: a count the bytes cannot hold is
    // refused before anything is allocated for it.
    let sizes_len = count.checked_mul(8).ok_or(PairsError::Truncated)?;
    let mut sizes = rest.get(..sizes_len).ok_or(PairsError::Truncated)?;
    let mut at = sizes_len.checked_add(4).ok_or(PairsError::Truncated)?;
    let mut spans = Vec::with_capacity(count);
    for _ in 0..count {
        let (name_size, after) = take_u32(sizes)?;
        let (value_size, after) = take_u32(after)?;
        sizes = after;
        let name = take_terminated(bytes, &mut at, name_size)?;
        let value = take_terminated(bytes, &mut at, value_size)?;
        spans.push((name, value));
    }
    if at != bytes.len() {
        return Err(PairsError::TrailingBytes);
    }
    Ok(spans)
}

/// Bytes from the host as text: the host passes bytes a client sent (Envoy
/// lets obs-text, bytes 0x80-0xFF, through in header values), so what is not
/// UTF-8 is read with U+FFFD in place of its bad bytes, never refused.
/// `str::from_utf8` first: its ASCII fast path validates a header several
/// times faster than `from_utf8_lossy`, which walks it byte by byte, and
/// nearly every header is ASCII (BENCHMARKS.md, "The floor in V8").
pub fn lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn take_u32(bytes: &[u8]) -> Result<(u32, &[u8]), PairsError> {
    let (head, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(PairsError::Truncated)?;
    Ok((u32::from_le_bytes(*head), rest))
}

/// `size` bytes from `at`, then the NUL that ends them; `at` moves past the NUL.
fn take_terminated(bytes: &[u8], at: &mut usize, size: u32) -> Result<Range<usize>, PairsError> {
    let size = usize::try_from(size).map_err(|_| PairsError::Truncated)?;
    let end = at.checked_add(size).ok_or(PairsError::Truncated)?;
    if end > bytes.len() {
        return Err(PairsError::Truncated);
    }
    match bytes.get(end) {
        Some(0) => {}
        Some(_) => return Err(PairsError::MissingNul),
        None => return Err(PairsError::Truncated),
    }
    let span = *at..end;
    *at = end.checked_add(1).ok_or(PairsError::Truncated)?;
    Ok(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Pair<'a> = (&'a [u8], &'a [u8]);

    /// The pairs [`spans`] finds, as the bytes they cover.
    fn decode(bytes: &[u8]) -> Result<Vec<Pair<'_>>, PairsError> {
        Ok(spans(bytes)?
            .into_iter()
            .map(|(name, value)| (&bytes[name], &bytes[value]))
            .collect())
    }

    /// Two pairs, written out by hand from the format's description.
    #[rustfmt::skip]
    const TWO: &[u8] = &[
        2, 0, 0, 0,
        7, 0, 0, 0, 3, 0, 0, 0,
        1, 0, 0, 0, 0, 0, 0, 0,
        b':', b'm', b'e', b't', b'h', b'o', b'd', 0, b'G', b'E', b'T', 0,
        b'x', 0, 0,
    ];

    #[test]
    fn encodes_count_then_sizes_then_nul_terminated_fields() {
        assert_eq!(encode(&[(":method", "GET"), ("x", "")]).unwrap(), TWO);
        assert_eq!(encode::<&str, &str>(&[]).unwrap(), [0, 0, 0, 0]);
    }

    #[test]
    fn decodes_what_it_encodes() {
        let pairs = decode(TWO).unwrap();
        assert_eq!(
            pairs,
            [(&b":method"[..], &b"GET"[..]), (&b"x"[..], &b""[..])]
        );
        let text = [("authorization", "Bearer a.b.c"), ("cookie", "a=1; b=2")];
        let bytes = encode(&text).unwrap();
        let decoded: Vec<(String, String)> = decode(&bytes)
            .unwrap()
            .into_iter()
            .map(|(name, value)| (lossy(name), lossy(value)))
            .collect();
        assert_eq!(decoded, text.map(|(n, v)| (n.to_string(), v.to_string())));
    }

    #[test]
    fn nothing_and_a_zero_count_are_the_empty_map() {
        assert_eq!(decode(&[]).unwrap(), []);
        assert_eq!(decode(&[0, 0, 0, 0]).unwrap(), []);
    }

    #[test]
    fn values_that_are_not_utf8_are_read_not_refused() {
        assert_eq!(lossy(b"caf\xe9"), "caf\u{fffd}");
        assert_eq!(lossy("café".as_bytes()), "café");
        assert_eq!(lossy(b""), "");
    }

    #[test]
    fn every_truncation_of_a_good_map_is_refused() {
        for len in 1..TWO.len() {
            assert!(decode(&TWO[..len]).is_err(), "accepted {len} bytes");
        }
    }

    #[test]
    fn malformed_maps_are_refused() {
        // A count, but no sizes; a count far beyond the bytes.
        assert_eq!(decode(&[1, 0, 0, 0]), Err(PairsError::Truncated));
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(PairsError::Truncated)
        );
        assert_eq!(decode(&[1, 2, 3]), Err(PairsError::Truncated));
        // A size past the end of the data.
        let mut huge = TWO.to_vec();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Err(PairsError::Truncated));
        // A size one short: the byte after the field is not NUL.
        let mut short = TWO.to_vec();
        short[4] = 6;
        assert_eq!(decode(&short), Err(PairsError::MissingNul));
        // A NUL replaced.
        let mut no_nul = TWO.to_vec();
        no_nul[27] = b'!';
        assert_eq!(decode(&no_nul), Err(PairsError::MissingNul));
        // More bytes than the pairs take.
        let mut long = TWO.to_vec();
        long.push(0);
        assert_eq!(decode(&long), Err(PairsError::TrailingBytes));
        // A count smaller than the pairs that follow leaves bytes over.
        let mut fewer = TWO.to_vec();
        fewer[0] = 1;
        assert!(decode(&fewer).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Every 1- and 2-byte input, and a sweep of longer ones derived from TWO.
        for a in 0..=255u8 {
            let _ = decode(&[a]);
            for b in 0..=255u8 {
                let _ = decode(&[a, b]);
            }
        }
        for position in 0..TWO.len() {
            for value in [0u8, 1, 7, 0x80, 0xff] {
                let mut bytes = TWO.to_vec();
                bytes[position] = value;
                let _ = decode(&bytes);
            }
        }
    }
}
