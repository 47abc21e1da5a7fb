//! Finding the bearer token of a request (headers, query parameters, cookies) and
//! removing it before the request goes upstream.

use crate::cause::Cause;
use crate::outcome::HeaderEdits;
use crate::request::RequestView;

/// Tokens longer than this are refused before any parsing (`verify::decode`).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

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
    /// Other locations that carry the same token (removed with it).
    pub also_at: Vec<TokenLocation>,
}

/// The token of the request: the first found, trying the locations in order.
/// Every location and every copy is looked at: two different tokens (in a
/// header and a query parameter, in two headers, a parameter given twice)
/// refuse the request with `token_malformed` rather than verify one and let
/// the other travel on to a backend that may read it.
pub fn find_token(
    request: &RequestView,
    locations: &[TokenLocation],
) -> Result<Option<FoundToken>, Cause> {
    let mut found: Option<FoundToken> = None;
    for location in locations {
        let values: Vec<&str> = match location {
            TokenLocation::Header { name, prefix } => request
                .header_values(name)
                .filter_map(|value| strip_prefix_ignore_case(value, prefix))
                .collect(),
            TokenLocation::Param(name) => query_params(&request.path, name),
            TokenLocation::Cookie(name) => request
                .header_values("cookie")
                .flat_map(|header| cookie_values(header, name))
                .collect(),
        };
        for value in values.into_iter().map(str::trim).filter(|v| !v.is_empty()) {
            match &mut found {
                None => {
                    found = Some(FoundToken {
                        value: value.to_string(),
                        location: location.clone(),
                        also_at: Vec::new(),
                    })
                }
                Some(first) if first.value != value => return Err(Cause::TokensDiffer),
                Some(first) => {
                    if first.location != *location && !first.also_at.contains(location) {
                        first.also_at.push(location.clone());
                    }
                }
            }
        }
    }
    Ok(found)
}

/// The auth scheme is case-insensitive (RFC 9110 section 11.1): `bearer x` is a bearer token.
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

fn query_params<'a>(path: &'a str, name: &str) -> Vec<&'a str> {
    let Some((_, query)) = path.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or("");
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
        .collect()
}

fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

/// Adds to `edits` what removes the token from everywhere it was found.
pub fn remove_token(request: &RequestView, found: &FoundToken, edits: &mut HeaderEdits) {
    for location in std::iter::once(&found.location).chain(&found.also_at) {
        remove_at(request, location, edits);
    }
}

fn remove_at(request: &RequestView, location: &TokenLocation, edits: &mut HeaderEdits) {
    match location {
        TokenLocation::Header { name, .. } => edits.remove.push(name.clone()),
        TokenLocation::Param(name) => {
            let path = edits.path.as_deref().unwrap_or(&request.path);
            edits.path = Some(path_without_param(path, name));
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
        crate::testutil::get_request("example.com", path, headers)
    }

    fn find(request: &RequestView, locations: &[TokenLocation]) -> Option<FoundToken> {
        find_token(request, locations).unwrap()
    }

    fn bearer() -> TokenLocation {
        TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }
    }

    #[test]
    fn finds_bearer_tokens_case_insensitively() {
        let found = find(
            &request("/", &[("authorization", "bearer abc.def.ghi")]),
            &[bearer()],
        );
        assert_eq!(found.unwrap().value, "abc.def.ghi");
        assert_eq!(
            find(
                &request("/", &[("authorization", "Basic dXNlcg==")]),
                &[bearer()]
            ),
            None
        );
        assert_eq!(
            find(&request("/", &[("authorization", "Bearer ")]), &[bearer()]),
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
        let by_param = find(&request("/x?a=1&access_token=tok&b=2", &[]), &locations).unwrap();
        assert_eq!(by_param.value, "tok");
        assert_eq!(by_param.location, locations[1]);
        let by_cookie = find(
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
        assert_eq!(find(&request("/x?access_token_x=1", &[]), &locations), None);
    }

    #[test]
    fn removes_a_header_token() {
        let view = request("/", &[("authorization", "Bearer t")]);
        let found = find(&view, &[bearer()]).unwrap();
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
        let found = find(&view, &[TokenLocation::Cookie("id_token".into())]).unwrap();
        let mut edits = HeaderEdits::default();
        remove_token(&view, &found, &mut edits);
        assert_eq!(edits.remove, ["cookie"]);
        assert_eq!(edits.set, [("cookie".to_string(), "a=1; b=2".to_string())]);

        let only = request("/", &[("cookie", "id_token=t")]);
        let found = find(&only, &[TokenLocation::Cookie("id_token".into())]).unwrap();
        let mut edits = HeaderEdits::default();
        remove_token(&only, &found, &mut edits);
        assert!(edits.set.is_empty());
    }

    #[test]
    fn two_different_tokens_refuse_the_request() {
        let locations = [bearer(), TokenLocation::Param("access_token".into())];
        for view in [
            request("/x?access_token=b", &[("authorization", "Bearer a")]),
            request("/x?access_token=a&access_token=b", &[]),
            request(
                "/x",
                &[("authorization", "Bearer a"), ("authorization", "bearer b")],
            ),
        ] {
            assert_eq!(
                find_token(&view, &locations),
                Err(Cause::TokensDiffer),
                "{view:?}"
            );
        }
        let cookie = [TokenLocation::Cookie("id_token".into())];
        let view = request(
            "/",
            &[("cookie", "id_token=a; x=1"), ("cookie", "id_token=b")],
        );
        assert_eq!(find_token(&view, &cookie), Err(Cause::TokensDiffer));
        // A non-bearer Authorization beside the bearer one is not a token.
        let view = request(
            "/",
            &[
                ("authorization", "Basic dXNlcg=="),
                ("authorization", "Bearer a"),
            ],
        );
        assert_eq!(find(&view, &locations).unwrap().value, "a");
    }

    #[test]
    fn the_same_token_twice_is_removed_from_every_place() {
        let locations = [bearer(), TokenLocation::Param("access_token".into())];
        let view = request(
            "/x?access_token=a&k=1&access_token=a",
            &[("authorization", "Bearer a")],
        );
        let found = find(&view, &locations).unwrap();
        assert_eq!(found.location, locations[0]);
        assert_eq!(found.also_at, [locations[1].clone()]);
        let mut edits = HeaderEdits::default();
        remove_token(&view, &found, &mut edits);
        assert_eq!(edits.remove, ["authorization"]);
        assert_eq!(edits.path.as_deref(), Some("/x?k=1"));
    }
}
