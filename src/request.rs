//! The request as the core sees it: a plain snapshot the host reads once.

use std::cell::OnceCell;

use crate::header_list::HeaderList;
use crate::header_pairs::PairsError;

/// Method, path and headers of one request. Header names are lower case (as Envoy
/// stores them); a header sent several times appears several times.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    pub method: String,
    /// `:path`, with the query string.
    pub path: String,
    pub authority: String,
    pub headers: HeaderList,
    /// [`RequestView::canonical_path`], worked out on first use: the skip
    /// check, the session shield, the cookie diet, header budgets and
    /// authorization all match it. The view is never changed once read, so
    /// what is kept here stays right. A view built by hand starts without
    /// it: `..RequestView::default()`.
    pub canonical: CanonicalPath,
}

/// The canonical path of a view once worked out; only the view fills it.
#[derive(Debug, Clone, Default)]
pub struct CanonicalPath(OnceCell<String>);

/// Views are equal when what was read is: the remembered canonical path
/// follows from `path`, whether or not it was worked out yet.
impl PartialEq for RequestView {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method
            && self.path == other.path
            && self.authority == other.authority
            && self.headers == other.headers
    }
}

impl Eq for RequestView {}

impl RequestView {
    /// Builds a view from raw pairs, lifting the pseudo-headers out.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> RequestView {
        RequestView::lifting_pseudo_headers(pairs.into_iter().collect())
    }

    /// Builds a view from the host's serialized header map, read as text
    /// ([`crate::header_pairs::lossy`]). The view keeps the host's buffer as its
    /// headers' text ([`HeaderList::from_map`]).
    pub fn from_map(bytes: Vec<u8>) -> Result<RequestView, PairsError> {
        Ok(RequestView::lifting_pseudo_headers(HeaderList::from_map(
            bytes,
        )?))
    }

    /// A view of `headers` (names lower case) with `:method`, `:path` and
    /// `:authority` lifted out of them; the last of each counts.
    fn lifting_pseudo_headers(mut headers: HeaderList) -> RequestView {
        let mut view = RequestView::default();
        headers.retain(|name, value| {
            let slot = match name {
                ":method" => &mut view.method,
                ":path" => &mut view.path,
                ":authority" => &mut view.authority,
                _ => return true,
            };
            value.clone_into(slot);
            false
        });
        view.headers = headers;
        view
    }

    /// Every value of a header, in order. `name` must be lower case.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.values(name)
    }

    /// The first value of a header. `name` must be lower case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Whether this is a CORS preflight, by the test Envoy's `jwt_authn` makes
    /// (`isCorsPreflightRequest` in its `filter.cc`): method `OPTIONS`
    /// (exactly; methods are case-sensitive) and a non-empty `Origin` and
    /// `Access-Control-Request-Method`. Browsers send preflights without
    /// credentials (Fetch standard, "CORS-preflight request").
    pub fn is_cors_preflight(&self) -> bool {
        let present = |name| self.header(name).is_some_and(|value| !value.is_empty());
        self.method == "OPTIONS" && present("origin") && present("access-control-request-method")
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or("")
    }

    /// The path as a backend will understand it, which is what `skipPaths` and
    /// authorization rules match: percent-escapes decoded (but `%2F`, which
    /// would make a new segment), repeated slashes merged, `.` and `..`
    /// segments resolved (RFC 3986 section 5.2.4). So `//v1/models/x%3Apredict`
    /// and `/dex/../pipeline` cannot slip past a rule written for the plain form.
    pub fn canonical_path(&self) -> &str {
        self.canonical
            .0
            .get_or_init(|| self.work_out_canonical_path())
    }

    fn work_out_canonical_path(&self) -> String {
        let path = self.path_only();
        // Most paths are their own canonical form. Kept as they are, they
        // skip the decode and rebuild below, whose code (formatting, joining,
        // lossy UTF-8) then never runs: in Envoy, every KB of code a request
        // runs costs about 158 ns (BENCHMARKS "Where the microseconds go, in
        // Envoy").
        if is_canonical(path) {
            return path.to_string();
        }
        rebuild_canonical(path)
    }

    /// The host, lower case, without port or trailing dot (`IRIS.Team.example.com.:443`
    /// is `iris.team.example.com`).
    pub fn canonical_host(&self) -> String {
        let authority = self.authority.as_str();
        let host = if let Some(rest) = authority.strip_prefix('[') {
            rest.split(']').next().unwrap_or(rest)
        } else {
            authority
                .rsplit_once(':')
                .map_or(authority, |(host, _)| host)
        };
        host.trim_end_matches('.').to_ascii_lowercase()
    }
}

/// Whether `path` is its own canonical form: it starts with `/`, holds no
/// `%`, and has no `.` or `..` segment and no empty one but the last (after
/// a trailing slash).
fn is_canonical(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    if path.contains('%') {
        return false;
    }
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// [`RequestView::canonical_path`] worked out in full.
fn rebuild_canonical(path: &str) -> String {
    let decoded = percent_decode_except_slash(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut canonical = format!("/{}", segments.join("/"));
    if decoded.ends_with('/') && canonical.len() > 1 {
        canonical.push('/');
    }
    canonical
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Decodes `%XX` escapes, except `%2F` (an escaped slash stays one segment's data).
fn percent_decode_except_slash(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            if let (Some(high), Some(low)) = (
                bytes
                    .get(index.saturating_add(1))
                    .copied()
                    .and_then(hex_value),
                bytes
                    .get(index.saturating_add(2))
                    .copied()
                    .and_then(hex_value),
            ) {
                // Two hex digits: at most 0xFF, so the shift and `or` stay in a byte.
                let decoded = (high << 4) | low;
                if decoded != b'/' {
                    out.push(decoded);
                    index = index.saturating_add(3);
                    continue;
                }
            }
        }
        out.push(byte);
        index = index.saturating_add(1);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header_pairs;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn canonical_paths_and_hosts() {
        let view = |path: &str, authority: &str| RequestView {
            path: path.into(),
            authority: authority.into(),
            ..RequestView::default()
        };
        for (raw, canonical) in [
            ("/v1/models/iris:predict", "/v1/models/iris:predict"),
            ("//v1//models/iris%3Apredict?x=1", "/v1/models/iris:predict"),
            ("/dex/../pipeline/./runs", "/pipeline/runs"),
            ("/../../etc", "/etc"),
            ("/a%2Fb/", "/a%2Fb/"),
            ("/bad%zz", "/bad%zz"),
            ("", "/"),
        ] {
            assert_eq!(view(raw, "h").canonical_path(), canonical, "{raw}");
        }
        assert_eq!(
            view("/", "IRIS.Team-B.example.com.:443").canonical_host(),
            "iris.team-b.example.com"
        );
        assert_eq!(view("/", "[::1]:8080").canonical_host(), "::1");
        assert_eq!(view("/", "gw").canonical_host(), "gw");
    }

    #[test]
    fn a_path_kept_as_its_own_canonical_form_is_what_the_full_rebuild_gives() {
        // Every path of up to six characters over these, with and without a
        // leading slash: the kept ones must be exactly the rebuild's answer.
        let alphabet = ['a', '/', '.', '%', '2', 'F'];
        let mut kept = 0;
        for length in 0..=6_u32 {
            for mut code in 0..6_usize.pow(length) {
                let mut path = String::new();
                for _ in 0..length {
                    path.push(alphabet[code % 6]);
                    code /= 6;
                }
                if is_canonical(&path) {
                    kept += 1;
                    assert_eq!(rebuild_canonical(&path), path, "{path}");
                }
            }
        }
        assert!(kept > 100, "{kept} kept");
    }

    #[test]
    fn the_remembered_canonical_path_changes_no_answer_and_no_equality() {
        let view = RequestView::from_pairs(vec![(":path".into(), "//a/./b%3A?x=1".into())]);
        let unworked = view.clone();
        assert_eq!(view.canonical_path(), "/a/b:");
        assert_eq!(view.canonical_path(), "/a/b:");
        assert_eq!(view, unworked);
        assert_eq!(view.clone().canonical_path(), "/a/b:");
    }

    #[test]
    fn cors_preflights_are_told_apart_as_envoy_does() {
        let view = |method: &str, headers: &[(&str, &str)]| {
            let mut pairs = vec![(":method".to_string(), method.to_string())];
            pairs.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
            RequestView::from_pairs(pairs)
        };
        let origin = ("Origin", "https://app.example.com");
        let acrm = ("Access-Control-Request-Method", "POST");
        assert!(view("OPTIONS", &[origin, acrm]).is_cors_preflight());
        assert!(view("OPTIONS", &[acrm, ("origin", "null")]).is_cors_preflight());
        for (method, headers) in [
            ("OPTIONS", &[origin][..]),
            ("OPTIONS", &[acrm][..]),
            ("OPTIONS", &[][..]),
            ("OPTIONS", &[("origin", ""), acrm][..]),
            (
                "OPTIONS",
                &[origin, ("access-control-request-method", "")][..],
            ),
            ("options", &[origin, acrm][..]),
            ("GET", &[origin, acrm][..]),
            ("POST", &[origin, acrm][..]),
        ] {
            assert!(
                !view(method, headers).is_cors_preflight(),
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn a_view_from_the_hosts_map_is_the_view_from_its_pairs() {
        let pairs = [
            (":method", "GET"),
            (":Path", "/a/b?x=1"),
            (":authority", "kubeflow.example.com"),
            (":scheme", "https"),
            ("Cookie", "a=1"),
            ("cookie", "b=2"),
            ("x-latin1", "caf\u{fffd}"),
        ];
        let owned = pairs.map(|(n, v)| (n.to_string(), v.to_string())).to_vec();
        let mut bytes: Vec<(&[u8], &[u8])> =
            pairs.map(|(n, v)| (n.as_bytes(), v.as_bytes())).to_vec();
        bytes[6].1 = b"caf\xe9";
        let from_map = RequestView::from_map(header_pairs::encode(&bytes).unwrap()).unwrap();
        assert_eq!(from_map, RequestView::from_pairs(owned));
        assert_eq!(from_map.path, "/a/b?x=1");
        assert_eq!(from_map.header(":scheme"), Some("https"));
        assert_eq!(
            RequestView::from_map(Vec::new()).unwrap(),
            RequestView::default()
        );
        assert!(RequestView::from_map(vec![1, 0, 0, 0]).is_err());
    }

    #[test]
    fn lifts_pseudo_headers_and_keeps_repeats() {
        let view = RequestView::from_pairs(vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/a/b?x=1".into()),
            (":authority".into(), "kubeflow.example.com".into()),
            ("Cookie".into(), "a=1".into()),
            ("cookie".into(), "b=2".into()),
        ]);
        assert_eq!(view.method, "GET");
        assert_eq!(view.path_only(), "/a/b");
        assert_eq!(
            view.header_values("cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(view.header("authorization"), None);
    }
}
