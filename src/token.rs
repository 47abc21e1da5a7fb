//! Finding the bearer token of a request (headers, query parameters, cookies) and
//! removing it before the request goes upstream.

use crate::outcome::HeaderEdits;
use crate::request::RequestView;

/// A place a token may be, from `fromHeaders`, `fromParams` or `fromCookies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    /// A header (lower-case name) whose value starts with `prefix` (e.g. `Bearer `).
    Header { name: String, prefix: String },
    /// A query parameter.
    Param(String),
    /// A cookie.
    Cookie(String),
}

/// A token found in a request, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundToken {
    pub value: String,
    pub location: TokenLocation,
}

/// The first token found, trying the locations in order.
pub fn find_token(request: &RequestView, locations: &[TokenLocation]) -> Option<FoundToken> {
    locations.iter().find_map(|location| {
        let value = match location {
            TokenLocation::Header { name, prefix } => request
                .header_values(name)
                .find_map(|value| strip_prefix_ignore_case(value, prefix)),
            TokenLocation::Param(name) => query_param(&request.path, name),
            TokenLocation::Cookie(name) => request
                .header_values("cookie")
                .find_map(|header| cookie_value(header, name)),
        }?;
        let value = value.trim();
        (!value.is_empty()).then(|| FoundToken {
            value: value.to_string(),
            location: location.clone(),
        })
    })
}

/// The auth scheme is case-insensitive (RFC 9110 section 11.1): `bearer x` is a bearer token.
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = path.split_once('?')?;
    let query = query.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// Adds to `edits` what removes the token from where it was found.
pub fn remove_token(request: &RequestView, found: &FoundToken, edits: &mut HeaderEdits) {
    match &found.location {
        TokenLocation::Header { name, .. } => edits.remove.push(name.clone()),
        TokenLocation::Param(name) => {
            edits.path = Some(path_without_param(&request.path, name));
        }
        TokenLocation::Cookie(name) => {
            // Several Cookie headers are folded into one; the others keep their order.
            let kept: Vec<&str> = request
                .header_values("cookie")
                .flat_map(|header| header.split(';'))
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .filter(|pair| {
                    pair.split_once('=')
                        .is_none_or(|(key, _)| key.trim() != name)
                })
                .collect();
            edits.remove.push("cookie".into());
            if !kept.is_empty() {
                edits.set.push(("cookie".into(), kept.join("; ")));
            }
        }
    }
}

fn path_without_param(path: &str, name: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split_once('=').map_or(*pair, |(key, _)| key) != name)
        .collect();
    let mut result = base.to_string();
    if !kept.is_empty() && kept.iter().any(|pair| !pair.is_empty()) {
        result.push('?');
        result.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        result.push('#');
        result.push_str(fragment);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestView {
        RequestView {
            method: "GET".into(),
            path: path.into(),
            authority: "example.com".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn bearer() -> TokenLocation {
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    #[test]
    fn finds_bearer_tokens_case_insensitively() {
        let found = find_token(
            &request("/", &[("authorization", "bearer abc.def.ghi")]),
            &[bearer()],
        );
        assert_eq!(found.unwrap().value, "abc.def.ghi");
        assert_eq!(
            find_token(
                &request("/", &[("authorization", "Basic dXNlcg==")]),
                &[bearer()]
            ),
            None
        );
        assert_eq!(
            find_token(&request("/", &[("authorization", "Bearer ")]), &[bearer()]),
            None
        );
    }

    #[test]
    fn finds_tokens_in_params_and_cookies_in_order() {
        let locations = [
            bearer(),
            TokenLocation::Param("access_token".into()),
            TokenLocation::Cookie("id_token".into()),
        ];
        let by_param =
            find_token(&request("/x?a=1&access_token=tok&b=2", &[]), &locations).unwrap();
        assert_eq!(by_param.value, "tok");
        assert_eq!(by_param.location, locations[1]);
        let by_cookie = find_token(
            &request(
                "/x",
                &[
                    ("cookie", "session=s1"),
                    ("cookie", "theme=dark; id_token=ck"),
                ],
            ),
            &locations,
        )
        .unwrap();
        assert_eq!(by_cookie.value, "ck");
        assert_eq!(
            find_token(&request("/x?access_token_x=1", &[]), &locations),
            None
        );
    }

    #[test]
    fn removes_a_header_token() {
        let view = request("/", &[("authorization", "Bearer t")]);
        let found = find_token(&view, &[bearer()]).unwrap();
        let mut edits = HeaderEdits::default();
        remove_token(&view, &found, &mut edits);
        assert_eq!(edits.remove, ["authorization"]);
    }

    #[test]
    fn removes_a_query_token_and_keeps_the_rest() {
        assert_eq!(
            path_without_param("/p?a=1&access_token=t&b=2", "access_token"),
            "/p?a=1&b=2"
        );
        assert_eq!(
            path_without_param("/p?access_token=t", "access_token"),
            "/p"
        );
        assert_eq!(path_without_param("/p", "access_token"), "/p");
    }

    #[test]
    fn removes_a_cookie_token_and_keeps_other_cookies() {
        let view = request("/", &[("cookie", "a=1; id_token=t"), ("cookie", "b=2")]);
        let found = find_token(&view, &[TokenLocation::Cookie("id_token".into())]).unwrap();
        let mut edits = HeaderEdits::default();
        remove_token(&view, &found, &mut edits);
        assert_eq!(edits.remove, ["cookie"]);
        assert_eq!(edits.set, [("cookie".to_string(), "a=1; b=2".to_string())]);

        let only = request("/", &[("cookie", "id_token=t")]);
        let found = find_token(&only, &[TokenLocation::Cookie("id_token".into())]).unwrap();
        let mut edits = HeaderEdits::default();
        remove_token(&only, &found, &mut edits);
        assert!(edits.set.is_empty());
    }
}
