//! The gRPC cookie diet (`cookie_diet::apply`): Cookie header rewriting.
//!
//! Input: a flags byte (content type: bits 0-2, path: bits 3-5, what token
//! removal already did: bits 6-7), a size-threshold byte (x4), then text: the
//! first line lists the names to strip (`,`-separated; none: strip all), each
//! further line is a Cookie header (with "set by token removal", the last line
//! is the Cookie that removal left). Invariants: no panic;
//! nothing changes unless the request is gRPC on a chosen path and its cookies
//! pass the threshold; when the diet applies, every cookie-pair (RFC 6265
//! section 4.2.1: pairs split by `;`, optional SP/HTAB around them) whose name
//! is not stripped is kept byte for byte and in order, no stripped name is left,
//! and the bytes removed are counted.
#![no_main]

use kfauth::config::Config;
use kfauth::cookie_diet::apply;
use kfauth::outcome::{is_grpc_content_type, HeaderEdits};
use kfauth::request::RequestView;
use libfuzzer_sys::fuzz_target;

enum Prior<'a> {
    Untouched,
    CookieRemoved,
    CookieSet(&'a str),
}

const CONTENT_TYPES: [&str; 6] = [
    "application/grpc",
    "application/grpc+proto",
    "application/grpc-web-text",
    "Application/GRPC",
    "application/json",
    "",
];
const PATHS: [&str; 5] = [
    "/ml_metadata.MetadataStoreService/GetArtifacts",
    "//ml_metadata.MetadataStoreService/PutArtifacts?x=1",
    "/pipeline/ml_metadata",
    "/%6Dl_metadata.MetadataStoreService/GetContexts",
    "/",
];

/// RFC 6265's OWS: SP and HTAB.
fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

fn pairs_of(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(';')
        .map(trim_ows)
        .filter(|pair| !pair.is_empty())
}

fn name_of(pair: &str) -> &str {
    trim_ows(pair.split_once('=').map_or(pair, |(name, _)| name))
}

fuzz_target!(|data: &[u8]| {
    let [flags, max, rest @ ..] = data else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let strip: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .filter(|name| !name.is_empty())
        .collect();
    let mut cookie_headers: Vec<&str> = lines.collect();
    let prior_kind = match flags >> 6 {
        0 | 1 => Prior::Untouched,
        2 => Prior::CookieRemoved,
        _ => Prior::CookieSet(cookie_headers.pop().unwrap_or_default()),
    };
    let config = serde_json::json!({
        "jwtRules": [{"issuer": "https://issuer.example.test", "jwksUri": "https://issuer.example.test/keys"}],
        "grpc": {"stripCookies": strip, "maxCookieBytes": usize::from(*max) * 4},
    });
    let config = match Config::parse(config.to_string().as_bytes()) {
        Ok(config) => config,
        Err(error) => {
            assert!(error.field.starts_with("grpc.stripCookies["), "{error:?}");
            return;
        }
    };
    let grpc = config.grpc.as_ref().expect("the grpc block");
    let content_type = CONTENT_TYPES[usize::from(flags & 7) % CONTENT_TYPES.len()];
    let mut headers = vec![("content-type".to_string(), content_type.to_string())];
    headers.extend(
        cookie_headers
            .iter()
            .map(|cookie| ("cookie".to_string(), cookie.to_string())),
    );
    let request = RequestView {
        method: "POST".into(),
        path: PATHS[usize::from((flags >> 3) & 7) % PATHS.len()].into(),
        authority: "kubeflow.example.test".into(),
        headers,
        ..RequestView::default()
    };
    let prior = match &prior_kind {
        Prior::Untouched => HeaderEdits::default(),
        Prior::CookieRemoved => HeaderEdits {
            remove: vec!["cookie".into()],
            ..HeaderEdits::default()
        },
        Prior::CookieSet(cookie) => HeaderEdits {
            remove: vec!["cookie".into()],
            set: vec![
                ("x-other".into(), "1".into()),
                ("cookie".into(), cookie.to_string()),
            ],
            ..HeaderEdits::default()
        },
    };
    let mut edits = prior.clone();
    apply(grpc, &request, &mut edits);

    // What goes upstream before the diet: the edited Cookie, or the client's.
    let current: Vec<String> = match &prior_kind {
        Prior::Untouched => request
            .header_values("cookie")
            .map(str::to_string)
            .collect(),
        Prior::CookieRemoved => vec![],
        Prior::CookieSet(cookie) => vec![cookie.to_string()],
    };
    let total: usize = current.iter().map(String::len).sum();
    let applies = is_grpc_content_type(Some(content_type))
        && grpc
            .cookie_paths
            .iter()
            .any(|path| path.is_match(&request.canonical_path()));
    let pairs: Vec<&str> = current.iter().flat_map(|header| pairs_of(header)).collect();
    let is_stripped = |pair: &&str| strip.is_empty() || strip.contains(&name_of(pair));
    let (stripped, kept): (Vec<&str>, Vec<&str>) = pairs.iter().copied().partition(is_stripped);
    if !applies || total == 0 || total <= grpc.max_cookie_bytes || stripped.is_empty() {
        assert_eq!(edits, prior, "changed cookies it should have left alone");
        return;
    }
    assert_eq!(edits.path, prior.path);
    assert!(edits.remove.iter().any(|name| name == "cookie"));
    assert_eq!(
        edits.stripped_cookie_bytes,
        stripped.iter().map(|pair| pair.len()).sum::<usize>()
    );
    let others: Vec<_> = prior
        .set
        .iter()
        .filter(|(name, _)| name != "cookie")
        .collect();
    let set_others: Vec<_> = edits
        .set
        .iter()
        .filter(|(name, _)| name != "cookie")
        .collect();
    assert_eq!(set_others, others);
    let cookies: Vec<&str> = edits
        .set
        .iter()
        .filter(|(name, _)| name == "cookie")
        .map(|(_, value)| value.as_str())
        .collect();
    if kept.is_empty() {
        assert!(
            cookies.is_empty(),
            "an empty Cookie header was set: {cookies:?}"
        );
        return;
    }
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let sent: Vec<&str> = cookies[0].split("; ").collect();
    assert_eq!(sent, kept, "kept cookies changed");
    for pair in pairs_of(cookies[0]) {
        assert!(
            !strip.contains(&name_of(pair)),
            "a stripped cookie is left: {pair}"
        );
    }
});
