//! JSON text as kfauth reads it from the outside (pluginConfig, JWKS and
//! discovery documents).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// The first byte of a JSON text that is not whitespace (RFC 8259 section 2):
/// serde reads a struct from a JSON array too (fields by position), so a
/// reader that wants an object checks that it starts with `{`.
pub fn first_byte(json: &[u8]) -> Option<u8> {
    json.iter()
        .copied()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Reads `T` from a document that must be a JSON object. The whole text is
/// read as JSON first: serde_json skips the members `T` does not name without
/// checking their escapes (a lone surrogate such as `"\ud800"` passes), and
/// reads a struct from an array too (fields by position). Found by the
/// jwks_parse fuzz target: a JWKS that is not JSON was accepted.
pub fn read_object<T: DeserializeOwned>(json: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice::<Value>(json)? {
        object @ Value::Object(_) => T::deserialize(object),
        _ => Err(serde::de::Error::custom("not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn whitespace_before_the_first_byte_is_skipped() {
        assert_eq!(first_byte(b" \r\n\t{}"), Some(b'{'));
        assert_eq!(first_byte(b"[1]"), Some(b'['));
        assert_eq!(first_byte(b" \n"), None);
    }

    #[derive(Deserialize, Debug)]
    struct Named {
        name: String,
    }

    #[test]
    fn an_object_is_read_with_members_it_does_not_name() {
        let named: Named = read_object(br#"{"name": "a", "other": [1, "\u00e9"]}"#).unwrap();
        assert_eq!(named.name, "a");
    }

    #[test]
    fn a_bad_escape_in_a_member_it_does_not_name_is_refused() {
        // serde_json alone reads these into `Named` (the fuzz target's finding).
        for text in [
            r#"{"name": "a", "other": "\ud800"}"#,
            r#"{"name": "a", "other": "\udc00"}"#,
            r#"{"name": "a", "other": {"deep": ["\ud800\u0041"]}}"#,
        ] {
            assert!(serde_json::from_str::<Named>(text).is_ok(), "{text}");
            let problem = read_object::<Named>(text.as_bytes()).unwrap_err();
            assert!(problem.to_string().contains("escape"), "{text}: {problem}");
        }
    }

    #[test]
    fn only_an_object_is_read() {
        for text in [r#"["a"]"#, r#""a""#, "1", "null"] {
            let problem = read_object::<Named>(text.as_bytes()).unwrap_err();
            assert_eq!(problem.to_string(), "not a JSON object", "{text}");
        }
        assert!(read_object::<Named>(br#"{"name": "a"} {}"#).is_err());
    }
}
