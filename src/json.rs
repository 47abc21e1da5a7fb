//! JSON text as kfauth reads it from the outside (pluginConfig, JWKS documents).

/// The first byte of a JSON text that is not whitespace (RFC 8259 section 2):
/// serde reads a struct from a JSON array too (fields by position), so a
/// reader that wants an object checks that it starts with `{`.
pub fn first_byte(json: &[u8]) -> Option<u8> {
    json.iter()
        .copied()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn whitespace_before_the_first_byte_is_skipped() {
        assert_eq!(first_byte(b" \r\n\t{}"), Some(b'{'));
        assert_eq!(first_byte(b"[1]"), Some(b'['));
        assert_eq!(first_byte(b" \n"), None);
    }
}
