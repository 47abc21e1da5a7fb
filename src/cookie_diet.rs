//! The cookie diet for gRPC routes: gRPC servers on gRPC C-core (ml-metadata's,
//! Python's grpcio) refuse requests whose metadata passes their limit (8 KiB by
//! default: "received initial metadata size exceeds limit"), and a browser's
//! oauth2-proxy session cookie alone can be bigger. On the chosen paths, gRPC
//! requests lose their cookies (all, or the named ones) before going upstream.

use regex_lite::Regex;
use serde::Deserialize;

use crate::config_field::{cookie_names, regexes, ConfigError};
use crate::cookie_header::{current_cookies, remove_cookies};
use crate::outcome::{is_grpc_content_type, HeaderEdits};
use crate::request::RequestView;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawGrpc {
    cookie_paths: Option<Vec<String>>,
    #[serde(default)]
    strip_cookies: Vec<String>,
    #[serde(default)]
    max_cookie_bytes: usize,
}

/// The validated `grpc` block.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    pub cookie_paths: Vec<Regex>,
    /// Cookie names to remove; empty: every cookie (the whole header).
    pub strip_cookies: Vec<String>,
    /// Strip only when the Cookie header(s) are larger than this; 0: always.
    pub max_cookie_bytes: usize,
}

/// ml-metadata's route in Kubeflow (the `metadata-grpc` VirtualService).
pub const DEFAULT_COOKIE_PATH: &str = "^/ml_metadata";

pub(crate) fn validate(raw: RawGrpc) -> Result<GrpcConfig, ConfigError> {
    let patterns = raw
        .cookie_paths
        .unwrap_or_else(|| vec![DEFAULT_COOKIE_PATH.to_string()]);
    let cookie_paths = regexes("grpc.cookiePaths", &patterns)?;
    cookie_names("grpc.stripCookies", &raw.strip_cookies)?;
    Ok(GrpcConfig {
        cookie_paths,
        strip_cookies: raw.strip_cookies,
        max_cookie_bytes: raw.max_cookie_bytes,
    })
}

/// Adds the diet to `edits` when the request is gRPC on a chosen path.
pub fn apply(grpc: &GrpcConfig, request: &RequestView, edits: &mut HeaderEdits) {
    if !is_grpc_content_type(request.header("content-type")) {
        return;
    }
    let path = request.canonical_path();
    if !grpc
        .cookie_paths
        .iter()
        .any(|pattern| pattern.is_match(path))
    {
        return;
    }
    let total: usize = current_cookies(request, edits)
        .iter()
        .map(|header| header.len())
        .sum();
    if total == 0 || total <= grpc.max_cookie_bytes {
        return;
    }
    let is_stripped = |name: &str| {
        grpc.strip_cookies.is_empty() || grpc.strip_cookies.iter().any(|stripped| stripped == name)
    };
    if let Some(removed) = remove_cookies(request, edits, is_stripped) {
        edits.stripped_cookie_bytes = removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn grpc(strip: &[&str], max: usize) -> GrpcConfig {
        validate(RawGrpc {
            cookie_paths: None,
            strip_cookies: strip.iter().map(|name| name.to_string()).collect(),
            max_cookie_bytes: max,
        })
        .unwrap()
    }

    fn request(path: &str, content_type: &str, cookies: &[&str]) -> RequestView {
        let mut headers = vec![("content-type".to_string(), content_type.to_string())];
        headers.extend(
            cookies
                .iter()
                .map(|value| ("cookie".to_string(), value.to_string())),
        );
        RequestView {
            method: "POST".into(),
            path: path.into(),
            authority: "kubeflow".into(),
            headers: headers.into_iter().collect(),
            ..RequestView::default()
        }
    }

    const MLMD: &str = "/ml_metadata.MetadataStoreService/GetArtifacts";

    #[test]
    fn grpc_on_ml_metadata_loses_every_cookie_by_default() {
        let mut edits = HeaderEdits::default();
        apply(
            &grpc(&[], 0),
            &request(MLMD, "application/grpc", &["_oauth2_proxy=abc", "x=1"]),
            &mut edits,
        );
        assert_eq!(edits.remove, ["cookie"]);
        assert!(edits.set.is_empty());
        assert_eq!(edits.stripped_cookie_bytes, 20);
    }

    #[test]
    fn named_cookies_go_and_the_others_stay_in_order() {
        let mut edits = HeaderEdits::default();
        let view = request(
            MLMD,
            "application/grpc-web+proto",
            &["a=1; _oauth2_proxy_0=big", "_oauth2_proxy_1=big; b=2"],
        );
        apply(
            &grpc(&["_oauth2_proxy_0", "_oauth2_proxy_1"], 0),
            &view,
            &mut edits,
        );
        assert_eq!(edits.set, [("cookie".to_string(), "a=1; b=2".to_string())]);
    }

    #[test]
    fn a_named_cookie_goes_even_when_rejoining_adds_as_many_bytes() {
        // Bare `;` separators: rejoining with `; ` adds bytes; the length alone
        // must not decide whether something was removed.
        let mut edits = HeaderEdits::default();
        let view = request(MLMD, "application/grpc", &["a=1;b=2;c=3;_o="]);
        apply(&grpc(&["_o"], 0), &view, &mut edits);
        assert_eq!(
            edits.set,
            [("cookie".to_string(), "a=1; b=2; c=3".to_string())]
        );
        let mut untouched = HeaderEdits::default();
        apply(
            &grpc(&["absent"], 0),
            &request(MLMD, "application/grpc", &["a=1;b=2"]),
            &mut untouched,
        );
        assert_eq!(untouched, HeaderEdits::default());
    }

    #[test]
    fn kept_cookies_keep_their_non_ows_whitespace() {
        // Found by the cookie_diet fuzz target: a vertical tab or a no-break
        // space is cookie content, not the optional whitespace around a pair.
        let mut edits = HeaderEdits::default();
        let view = request(
            MLMD,
            "application/grpc",
            &["a=1\u{a0}; \u{b}; _o=big;\t\u{a0}b=2 "],
        );
        apply(&grpc(&["_o"], 0), &view, &mut edits);
        assert_eq!(
            edits.set,
            [(
                "cookie".to_string(),
                "a=1\u{a0}; \u{b}; \u{a0}b=2".to_string()
            )]
        );
        let mut untouched = HeaderEdits::default();
        apply(
            &grpc(&["_o"], 0),
            &request(MLMD, "application/grpc", &["\u{a0}_o=1; a=1"]),
            &mut untouched,
        );
        assert_eq!(untouched, HeaderEdits::default());
    }

    #[test]
    fn small_cookies_other_paths_and_plain_http_are_left_alone() {
        for view in [
            request(MLMD, "application/grpc", &["a=1"]),
            request("/pipeline/apis", "application/grpc", &["a=1234567890"]),
            request(MLMD, "application/json", &["a=1234567890"]),
        ] {
            let mut edits = HeaderEdits::default();
            apply(&grpc(&[], 5), &view, &mut edits);
            assert_eq!(edits, HeaderEdits::default(), "{view:?}");
        }
    }

    #[test]
    fn works_on_what_token_removal_left() {
        let mut edits = HeaderEdits {
            remove: vec!["cookie".into()],
            set: vec![("cookie".into(), "session=s; other=o".into())],
            ..HeaderEdits::default()
        };
        apply(
            &grpc(&["session"], 0),
            &request(
                MLMD,
                "application/grpc",
                &["id_token=t; session=s; other=o"],
            ),
            &mut edits,
        );
        assert_eq!(edits.set, [("cookie".to_string(), "other=o".to_string())]);
        assert_eq!(edits.remove, ["cookie"]);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let bad = validate(RawGrpc {
            cookie_paths: Some(vec!["(".into()]),
            strip_cookies: vec![],
            max_cookie_bytes: 0,
        });
        assert_eq!(bad.unwrap_err().field, "grpc.cookiePaths[0]");
        let bad = validate(RawGrpc {
            cookie_paths: None,
            strip_cookies: vec!["a b".into()],
            max_cookie_bytes: 0,
        });
        assert_eq!(bad.unwrap_err().field, "grpc.stripCookies[0]");
    }
}
