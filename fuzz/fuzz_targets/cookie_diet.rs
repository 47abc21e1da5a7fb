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
use kfauth::outcome::is_grpc_content_type;
use kfauth::request::RequestView;
use kfauth_fuzz::cookies::{assert_rewritten, name_of, pairs_of, Input};
use libfuzzer_sys::fuzz_target;

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

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let flags = input.flags;
    let strip = input.name_list();
    let config = serde_json::json!({
        "jwtRules": [{"issuer": "https://issuer.example.test", "jwksUri": "https://issuer.example.test/keys"}],
        "grpc": {"stripCookies": strip, "maxCookieBytes": usize::from(input.size) * 4},
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
        input
            .cookie_headers
            .iter()
            .map(|cookie| ("cookie".to_string(), cookie.clone())),
    );
    let request = RequestView {
        method: "POST".into(),
        path: PATHS[usize::from((flags >> 3) & 7) % PATHS.len()].into(),
        authority: "kubeflow.example.test".into(),
        headers: headers.into_iter().collect(),
        ..RequestView::default()
    };
    let prior = input.prior_edits();
    let mut edits = prior.clone();
    apply(grpc, &request, &mut edits);

    let current = input.current();
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
    assert_eq!(
        edits.stripped_cookie_bytes,
        stripped.iter().map(|pair| pair.len()).sum::<usize>()
    );
    assert_rewritten(&prior, &edits, &kept, |name| {
        strip.is_empty() || strip.contains(&name)
    });
});
