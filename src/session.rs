//! The session shield: the browser's session cookie (oauth2-proxy's
//! `oauth2_proxy_kubeflow`, and the parts `_0`, `_1`, ... it is split into
//! above 4,000 bytes) stays at the gateway. Every backend behind it would
//! otherwise receive the session of every visiting user, and one a user
//! controls (a notebook, a custom app) could replay it; and the cookie alone
//! can pass the header limits of gunicorn (8,190 bytes) and gRPC (8 KiB).
//!
//! The cookies are removed after authentication (a token carried in a cookie
//! is found first) on every path but `exemptPaths` (oauth2-proxy's own
//! `/oauth2/` routes, which need them), on skipped paths, CORS preflights and
//! requests without a token too.

use regex_lite::Regex;
use serde::Deserialize;

use crate::config_field::{cookie_names, regexes, ConfigError};
use crate::cookie_header::{current_cookies, remove_cookies};
use crate::outcome::HeaderEdits;
use crate::request::RequestView;

/// oauth2-proxy's `cookie_name` as Kubeflow configures it
/// (kubeflow/manifests `common/oauth2-proxy/base/oauth2_proxy.cfg`).
pub const DEFAULT_COOKIE: &str = "oauth2_proxy_kubeflow";
/// oauth2-proxy's routes (`/oauth2/start`, `/oauth2/callback`,
/// `/oauth2/sign_out`, ...), which read and rewrite the session.
pub const DEFAULT_EXEMPT_PATH: &str = "^/oauth2/";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSession {
    cookies: Option<Vec<String>>,
    exempt_paths: Option<Vec<String>>,
}

/// The validated `session` block (its defaults when the block is absent).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Session cookie names; each also stands for its split parts `NAME_<digits>`.
    /// Empty: the shield is off.
    pub cookies: Vec<String>,
    /// Paths (canonical, without query) where the cookies are left alone.
    pub exempt_paths: Vec<Regex>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        // The defaults are valid by construction; `validate` cannot fail on them.
        validate(RawSession::default()).unwrap_or(SessionConfig {
            cookies: Vec::new(),
            exempt_paths: Vec::new(),
        })
    }
}

pub(crate) fn validate(raw: RawSession) -> Result<SessionConfig, ConfigError> {
    let cookies = raw
        .cookies
        .unwrap_or_else(|| vec![DEFAULT_COOKIE.to_string()]);
    cookie_names("session.cookies", &cookies)?;
    let exempt_paths = regexes(
        "session.exemptPaths",
        &raw.exempt_paths
            .unwrap_or_else(|| vec![DEFAULT_EXEMPT_PATH.to_string()]),
    )?;
    Ok(SessionConfig {
        cookies,
        exempt_paths,
    })
}

/// Is `name` one of the session cookies, or one of its split parts? Exact
/// names only: `NAME`, or `NAME_` and one or more ASCII digits (oauth2-proxy's
/// `splitCookie` names the parts `fmt.Sprintf("%s_%d", name, i)`).
pub fn is_session_cookie(session: &SessionConfig, name: &str) -> bool {
    session.cookies.iter().any(|cookie| {
        name.strip_prefix(cookie.as_str()).is_some_and(|rest| {
            rest.is_empty()
                || rest.strip_prefix('_').is_some_and(|digits| {
                    !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
                })
        })
    })
}

/// Removes the session cookies from what goes upstream, unless the path is exempt.
pub fn apply(session: &SessionConfig, request: &RequestView, edits: &mut HeaderEdits) {
    // Most requests carry no session cookie: a substring search for the
    // names (a part `NAME_0` holds `NAME` too) spares them splitting the
    // Cookie header and matching the exempt paths.
    let may_hold_session = current_cookies(request, edits).iter().any(|header| {
        session
            .cookies
            .iter()
            .any(|cookie| header.contains(cookie.as_str()))
    });
    if !may_hold_session {
        return;
    }
    let path = request.canonical_path();
    if session
        .exempt_paths
        .iter()
        .any(|pattern| pattern.is_match(path))
    {
        return;
    }
    if let Some(removed) = remove_cookies(request, edits, |name| is_session_cookie(session, name)) {
        edits.session_cookie_bytes = removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use crate::testutil::with_cookies as request;

    fn shielded(path: &str, cookies: &[&str]) -> HeaderEdits {
        let mut edits = HeaderEdits::default();
        apply(
            &SessionConfig::default(),
            &request(path, cookies),
            &mut edits,
        );
        edits
    }

    #[test]
    fn the_session_and_its_split_parts_are_session_cookies() {
        let session = SessionConfig::default();
        for name in [
            "oauth2_proxy_kubeflow",
            "oauth2_proxy_kubeflow_0",
            "oauth2_proxy_kubeflow_1",
            "oauth2_proxy_kubeflow_12",
        ] {
            assert!(is_session_cookie(&session, name), "{name}");
        }
        for name in [
            "xoauth2_proxy_kubeflow",
            "oauth2_proxy_kubeflow_",
            "oauth2_proxy_kubeflow_x",
            "oauth2_proxy_kubeflow_csrf",
            "oauth2_proxy_kubeflow_1a",
            "oauth2_proxy_kubeflow_\u{661}",
            "oauth2_proxy_kubeflow0",
            "oauth2_proxy",
            "OAUTH2_PROXY_KUBEFLOW",
            "",
        ] {
            assert!(!is_session_cookie(&session, name), "{name}");
        }
    }

    #[test]
    fn a_split_session_goes_and_everything_else_stays_in_order() {
        let edits = shielded(
            "/jupyter/",
            &[
                "_xsrf=2|abc; oauth2_proxy_kubeflow_0=AAA; xoauth2_proxy_kubeflow=keep",
                "oauth2_proxy_kubeflow_1=BBB;note=oauth2_proxy_kubeflow=v; oauth2_proxy_kubeflow_x=1",
                "oauth2_proxy_kubeflow_2=C",
            ],
        );
        assert_eq!(edits.remove, ["cookie"]);
        assert_eq!(
            edits.set,
            [(
                "cookie".to_string(),
                "_xsrf=2|abc; xoauth2_proxy_kubeflow=keep; note=oauth2_proxy_kubeflow=v; oauth2_proxy_kubeflow_x=1"
                    .to_string()
            )]
        );
        assert_eq!(edits.session_cookie_bytes, 27 * 2 + 25);
        assert_eq!(edits.stripped_cookie_bytes, 0);
    }

    #[test]
    fn only_session_cookies_leave_no_header() {
        let edits = shielded("/", &["oauth2_proxy_kubeflow=s"]);
        assert_eq!(edits.remove, ["cookie"]);
        assert!(edits.set.is_empty());
    }

    #[test]
    fn exempt_paths_and_requests_without_a_session_are_untouched() {
        for (path, cookies) in [
            ("/oauth2/callback", &["oauth2_proxy_kubeflow=s; a=1"][..]),
            ("//oauth2/sign_out?rd=/", &["oauth2_proxy_kubeflow_0=s"][..]),
            ("/pipeline/", &["a=1; b=2"][..]),
            ("/pipeline/", &[][..]),
        ] {
            assert_eq!(shielded(path, cookies), HeaderEdits::default(), "{path}");
        }
        // A path that only looks like oauth2-proxy's is not exempt.
        assert_eq!(
            shielded("/x/oauth2/", &["oauth2_proxy_kubeflow=s"]).remove,
            ["cookie"]
        );
    }

    #[test]
    fn an_empty_cookie_list_turns_the_shield_off() {
        let session = validate(RawSession {
            cookies: Some(vec![]),
            exempt_paths: None,
        })
        .unwrap();
        let mut edits = HeaderEdits::default();
        apply(
            &session,
            &request("/", &["oauth2_proxy_kubeflow=s"]),
            &mut edits,
        );
        assert_eq!(edits, HeaderEdits::default());
    }

    #[test]
    fn works_on_what_token_removal_left() {
        let mut edits = HeaderEdits {
            remove: vec!["cookie".into()],
            set: vec![("cookie".into(), "oauth2_proxy_kubeflow=s; o=1".into())],
            ..HeaderEdits::default()
        };
        apply(
            &SessionConfig::default(),
            &request("/", &["id_token=t; oauth2_proxy_kubeflow=s; o=1"]),
            &mut edits,
        );
        assert_eq!(edits.set, [("cookie".to_string(), "o=1".to_string())]);
        assert_eq!(edits.remove, ["cookie"]);
    }

    #[test]
    fn bad_configuration_names_the_field() {
        let bad = validate(RawSession {
            cookies: Some(vec!["ok".into(), "a;b".into()]),
            exempt_paths: None,
        });
        assert_eq!(bad.unwrap_err().field, "session.cookies[1]");
        let bad = validate(RawSession {
            cookies: None,
            exempt_paths: Some(vec!["(".into()]),
        });
        assert_eq!(bad.unwrap_err().field, "session.exemptPaths[0]");
    }
}
