//! Claims to header values: dotted paths for nested claims, and how each JSON
//! type is written into a header.

use serde_json::{Map, Value};

/// Looks a claim up. A claim whose name contains dots (`https://example.com/groups`)
/// is found by its full name first; otherwise the dots walk nested objects
/// (`realm_access.roles`).
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    // A nested key may itself contain dots (Kubernetes' `kubernetes.io`): try
    // every split, the shortest first.
    path.match_indices('.').find_map(|(index, _)| {
        let head = path.get(..index)?;
        let rest = path.get(index.checked_add(1)?..)?;
        lookup(claims.get(head)?.as_object()?, rest)
    })
}

/// [`lookup`], reading a string as the list of its space-separated words when
/// `space_delimited` (Istio's `spaceDelimitedClaims`, e.g. OAuth's `scope`:
/// `"read write"` is `["read", "write"]`). A string of spaces only is an empty list.
pub fn lookup_list<'a>(
    claims: &'a Map<String, Value>,
    path: &str,
    space_delimited: bool,
) -> Option<std::borrow::Cow<'a, Value>> {
    let value = lookup(claims, path)?;
    match value {
        Value::String(text) if space_delimited => Some(std::borrow::Cow::Owned(Value::Array(
            text.split_whitespace()
                .map(|word| Value::String(word.to_string()))
                .collect(),
        ))),
        _ => Some(std::borrow::Cow::Borrowed(value)),
    }
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON,
/// arrays joined with `,` (what Kubeflow's `kubeflow-groups` readers expect),
/// objects as compact JSON. `null`, an empty array, and a value that
/// [`is_safe_header_value`] refuses give no value.
pub fn header_value(value: &Value) -> Option<String> {
    rendered(value).filter(|text| is_safe_header_value(text))
}

/// A claim rendered as [`header_value`] does, without the safety filter;
/// `None` for `null` and an empty array.
pub fn rendered(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => value.to_string(),
        Value::Array(items) => {
            if items.is_empty() {
                return None;
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
    })
}

/// Whether `text` may become an identity header value. Any UTF-8 text may,
/// written as its UTF-8 bytes (as Envoy's `jwt_authn` writes claims), except:
/// - a control character, Unicode's `Cc`: C0 (U+0000 to U+001F, so CR, LF,
///   NUL and tab), DEL (U+007F) and C1 (U+0080 to U+009F). CR, LF and NUL
///   would split or end the header; Envoy's HTTP/1 codec refuses every C0
///   but tab and DEL (a 503 for the request); a tab is whitespace a parser may
///   trim or fold; C1 holds NEL (U+0085), a line break to Unicode-aware
///   readers (Python's `str.splitlines`), and no name needs any of them;
/// - whitespace at either end (Unicode `White_Space`: space, NBSP, U+3000...):
///   HTTP parsers strip a value's surrounding spaces (RFC 9110 section 5.5)
///   and Unicode-aware code strips the rest, so `"admin "` would be read as
///   `admin`, a different identity than the one signed.
pub fn is_safe_header_value(text: &str) -> bool {
    !text.chars().any(char::is_control) && text.trim() == text
}

/// Parses a JSON object, refusing duplicate member names at any depth. RFC
/// 8259 leaves duplicates to the parser, and parsers disagree (serde_json keeps
/// the last, others the first or fail): a token whose `iss` or `email` depends
/// on the reader cannot be trusted. Nesting is bounded by serde_json (128).
pub fn parse_unique_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Unique>(bytes) {
        Ok(Unique(Value::Object(object))) => Some(object),
        _ => None,
    }
}

struct Unique(Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("JSON without duplicate member names")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Unique(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom("duplicate member name"));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn claims() -> Map<String, Value> {
        json!({
            "email": "alice@example.com",
            "groups": ["a", "b", "c"],
            "realm_access": {"roles": ["admin", "viewer"], "level": {"n": 3}},
            "https://example.com/team": "ml",
            "kubernetes.io": {"namespace": "team-a", "serviceaccount": {"name": "runner"}},
            "admin": true,
            "age": 42,
            "mixed": ["x", 1, true],
            "nothing": null,
            "evil": "alice\r\nkubeflow-userid: root",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn rendered(path: &str) -> Option<String> {
        lookup(&claims(), path).and_then(header_value)
    }

    #[test]
    fn renders_each_json_type() {
        assert_eq!(rendered("email").as_deref(), Some("alice@example.com"));
        assert_eq!(rendered("groups").as_deref(), Some("a,b,c"));
        assert_eq!(rendered("admin").as_deref(), Some("true"));
        assert_eq!(rendered("age").as_deref(), Some("42"));
        assert_eq!(rendered("mixed").as_deref(), Some("x,1,true"));
        assert_eq!(
            rendered("realm_access.level").as_deref(),
            Some(r#"{"n":3}"#)
        );
    }

    #[test]
    fn walks_nested_claims_and_prefers_full_names() {
        assert_eq!(
            rendered("realm_access.roles").as_deref(),
            Some("admin,viewer")
        );
        assert_eq!(rendered("realm_access.level.n").as_deref(), Some("3"));
        assert_eq!(rendered("https://example.com/team").as_deref(), Some("ml"));
        assert_eq!(
            rendered("kubernetes.io.namespace").as_deref(),
            Some("team-a")
        );
        assert_eq!(
            rendered("kubernetes.io.serviceaccount.name").as_deref(),
            Some("runner")
        );
    }

    #[test]
    fn missing_null_and_unsafe_values_give_no_header() {
        assert_eq!(rendered("missing"), None);
        assert_eq!(rendered("realm_access.missing"), None);
        assert_eq!(rendered("email.inner"), None);
        assert_eq!(rendered("nothing"), None);
        assert_eq!(rendered("evil"), None);
    }

    #[test]
    fn unsafe_header_values() {
        for unsafe_text in [
            "a\r\nb",
            "a\nb",
            "a\rb",
            "a\u{0}b",
            "a\tb",
            "a\u{1}b",
            "a\u{1b}[31m",
            "a\u{1f}",
            "a\u{7f}",
            "a\u{80}",
            "a\u{85}",
            "a\u{9f}",
            " admin",
            "admin\t",
            "admin ",
            "admin\u{a0}",
            "\u{3000}admin",
            "admin\u{2028}",
        ] {
            assert!(!is_safe_header_value(unsafe_text), "{unsafe_text:?}");
        }
        for safe in [
            "alice@example.com",
            "a b",
            "team-a,team-b",
            r#"{"n":3}"#,
            "",
            "josé@example.com",
            "zoë@example.com",
            "用户@例子.公司",
            "équipe-a,команда",
            "alice\u{a0}@example.com",
            "\u{a1}\u{a0}\u{ff}",
            "a\u{2028}b",
            "😀",
        ] {
            assert!(is_safe_header_value(safe), "{safe:?}");
        }
        assert_eq!(
            super::rendered(&json!("alice\r\nx: y")).as_deref(),
            Some("alice\r\nx: y")
        );
        // Arrays of non-ASCII strings are joined like any other.
        assert_eq!(
            header_value(&json!(["équipe-a", "команда"])).as_deref(),
            Some("équipe-a,команда")
        );
        assert_eq!(header_value(&json!(["a", "b\u{85}"])), None);
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(parse_unique_object(br#"{"a":1,"b":{"c":[{"d":2}]}}"#).is_some());
        for bad in [
            &br#"{"iss":"a","iss":"b"}"#[..],
            br#"{"a":{"b":1,"b":1}}"#,
            br#"{"a":[{"x":1,"x":2}]}"#,
            br#"[1,2]"#,
            br#""text""#,
            br#"5"#,
            br#"{"a":1}x"#,
        ] {
            assert_eq!(
                parse_unique_object(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        assert_eq!(parse_unique_object(deep.as_bytes()), None);
        let shallow = format!("{}1{}", r#"{"a":"#.repeat(20), "}".repeat(20));
        assert!(parse_unique_object(shallow.as_bytes()).is_some());
    }
}
