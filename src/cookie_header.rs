//! The `Cookie` request header as kfauth rewrites it: split into cookie-pairs
//! (RFC 6265 section 4.2.1), some removed by name, the others kept byte for
//! byte and in order, several `Cookie` headers folded into one. Shared by the
//! gRPC cookie diet and the session shield.

use crate::outcome::HeaderEdits;
use crate::request::RequestView;

/// The request's Cookie headers as they will go upstream: after `edits` (a
/// token removed from a cookie, another step's rewrite), else as the client
/// sent them. Borrowed: a session cookie is ~4 KiB, copied for nothing.
pub fn current_cookies<'a>(request: &'a RequestView, edits: &'a HeaderEdits) -> Vec<&'a str> {
    if let Some((_, value)) = edits.set.iter().find(|(name, _)| name == "cookie") {
        return vec![value.as_str()];
    }
    if edits.remove.iter().any(|name| name == "cookie") {
        return Vec::new();
    }
    request.header_values("cookie").collect()
}

/// RFC 6265 section 4.2.1 puts only SP (and HTAB, as OWS) around cookie-pairs;
/// `str::trim` would also eat Unicode and control whitespace that is part of a
/// cookie the backend must get byte for byte.
pub fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The name of a cookie-pair (`name=value`, or a bare `name`), without OWS.
pub fn pair_name(pair: &str) -> &str {
    trim_ows(pair.split_once('=').map_or(pair, |(name, _)| name))
}

/// Removes the cookie-pairs whose name `is_removed` says so from the Cookie
/// headers that go upstream. Returns the bytes of the removed pairs, or `None`
/// (and `edits` unchanged) when no pair was removed. The kept pairs are joined
/// with `; ` into one header; no pair kept, no header.
pub fn remove_cookies(
    request: &RequestView,
    edits: &mut HeaderEdits,
    is_removed: impl Fn(&str) -> bool,
) -> Option<usize> {
    // The kept pairs are joined as they are met: no list of pairs to build.
    let mut removed: Option<usize> = None;
    let mut kept = String::new();
    let pairs = current_cookies(request, edits)
        .into_iter()
        .flat_map(|header| header.split(';'))
        .map(trim_ows)
        .filter(|pair| !pair.is_empty());
    for pair in pairs {
        if is_removed(pair_name(pair)) {
            removed = Some(removed.unwrap_or(0).saturating_add(pair.len()));
        } else {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
    }
    let removed = removed?;
    edits.set.retain(|(name, _)| name != "cookie");
    if !edits.remove.iter().any(|name| name == "cookie") {
        edits.remove.push("cookie".into());
    }
    if !kept.is_empty() {
        edits.set.push(("cookie".into(), kept));
    }
    Some(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn request(cookies: &[&str]) -> RequestView {
        crate::testutil::with_cookies("/", cookies)
    }

    #[test]
    fn removes_by_exact_name_and_folds_the_rest() {
        let view = request(&["a=1; s=x;b=2", "s; c=s=3"]);
        let mut edits = HeaderEdits::default();
        assert_eq!(
            remove_cookies(&view, &mut edits, |name| name == "s"),
            Some(4)
        );
        assert_eq!(edits.remove, ["cookie"]);
        assert_eq!(
            edits.set,
            [("cookie".to_string(), "a=1; b=2; c=s=3".to_string())]
        );
    }

    #[test]
    fn nothing_removed_changes_nothing_and_nothing_kept_sets_no_header() {
        let view = request(&["a=1"]);
        let mut edits = HeaderEdits::default();
        assert_eq!(remove_cookies(&view, &mut edits, |name| name == "s"), None);
        assert_eq!(edits, HeaderEdits::default());
        let view = request(&["s=1", " s=2 "]);
        assert_eq!(
            remove_cookies(&view, &mut edits, |name| name == "s"),
            Some(6)
        );
        assert_eq!(edits.remove, ["cookie"]);
        assert!(edits.set.is_empty());
        // A second pass sees what the first left: nothing.
        assert_eq!(remove_cookies(&view, &mut edits, |_| true), None);
    }

    #[test]
    fn pair_names_lose_ows_only() {
        assert_eq!(pair_name(" a =1"), "a");
        assert_eq!(pair_name("\u{a0}a=1"), "\u{a0}a");
        assert_eq!(pair_name("bare"), "bare");
        assert_eq!(pair_name("=v"), "");
    }
}
