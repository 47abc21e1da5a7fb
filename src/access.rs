//! What Envoy's access log may say of a request kfauth handled: who (the
//! verified user and issuer), what kfauth decided and why, and for
//! authorization the review's verb, resource and namespace. The host writes
//! each known field as filter state (`wasm.kfauth.<field>`, Envoy's key for a
//! Wasm property), read by `%FILTER_STATE(wasm.kfauth.user:PLAIN)%`.
//!
//! Never a token or a cookie value. Envoy writes filter state into the log
//! line as it is, so no value holds a control character: claims were checked
//! as header values already, everything else is cleaned here.

use crate::outcome::{Denial, Reason};

/// What kfauth decided, in the log's words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decision {
    /// A verified token; the request went upstream.
    Allowed,
    /// Refused for anything but a missing token.
    Denied,
    /// No token: passed where tokens are optional, or refused `token_missing`.
    #[default]
    Unauthenticated,
    /// A skipped path or a CORS preflight: neither authenticated nor authorized.
    Skipped,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::Denied => "denied",
            Decision::Unauthenticated => "unauthenticated",
            Decision::Skipped => "skipped",
        }
    }
}

/// The longest detail or review attribute written, in bytes: an API server's
/// words are not kfauth's to let grow a log line without bound.
pub const MAX_VALUE_BYTES: usize = 256;

/// The access log's fields for one request, filled in as it is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    pub decision: Decision,
    /// The user header's value (the rule's first `outputClaimToHeaders`
    /// entry), or the TokenReview's user.
    pub user: Option<String>,
    /// The issuer of the verified token.
    pub issuer: Option<String>,
    pub reason: Option<Reason>,
    /// The refusal's cause (`exp passed`), or its detail when it has none.
    pub detail: Option<String>,
    /// The SubjectAccessReview's verb, resource (a non-resource URL's path)
    /// and namespace.
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub namespace: Option<String>,
}

impl Access {
    /// A request on a skipped path, or a CORS preflight.
    pub fn skipped() -> Access {
        Access {
            decision: Decision::Skipped,
            ..Access::default()
        }
    }

    /// A token of `issuer` was verified; `user` is who it names.
    pub fn authenticated(&mut self, issuer: &str, user: Option<&str>) {
        self.decision = Decision::Allowed;
        self.issuer = Some(printable(issuer));
        // Checked as a header value already (`is_safe_header_value`), or the
        // API server's name for the token's subject.
        self.user = user.map(printable);
    }

    /// The request needs this SubjectAccessReview.
    pub fn reviewed(
        &mut self,
        verb: Option<&str>,
        resource: Option<&str>,
        namespace: Option<&str>,
    ) {
        self.verb = verb.map(clean);
        self.resource = resource.map(clean);
        self.namespace = namespace.map(clean);
    }

    /// The request was refused.
    pub fn refused(&mut self, denial: &Denial) {
        self.decision = match denial.reason {
            Reason::TokenMissing => Decision::Unauthenticated,
            _ => Decision::Denied,
        };
        self.reason = Some(denial.reason);
        self.detail = match (denial.cause, &denial.detail) {
            (Some(cause), _) => Some(cause.as_str().to_string()),
            (None, Some(detail)) => Some(clean(detail)),
            (None, None) => None,
        };
    }

    /// The filter state to write: `(property, value)` for every known field,
    /// the decision always.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let known = [
            ("kfauth.user", self.user.as_deref()),
            ("kfauth.issuer", self.issuer.as_deref()),
            ("kfauth.reason", self.reason.map(Reason::as_str)),
            ("kfauth.detail", self.detail.as_deref()),
            ("kfauth.verb", self.verb.as_deref()),
            ("kfauth.resource", self.resource.as_deref()),
            ("kfauth.namespace", self.namespace.as_deref()),
        ];
        std::iter::once(("kfauth.decision", self.decision.as_str())).chain(
            known
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?))),
        )
    }
}

/// `text` cut to [`MAX_VALUE_BYTES`] at a character boundary, [`printable`].
fn clean(text: &str) -> String {
    let mut end = text.len().min(MAX_VALUE_BYTES);
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    printable(text.get(..end).unwrap_or_default())
}

/// `text` with each control character replaced by a space (one copy, as it
/// is, when it has none: the case of every request).
fn printable(text: &str) -> String {
    if !text.contains(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cause::Cause;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn fields(access: &Access) -> Vec<(&'static str, &str)> {
        access.fields().collect()
    }

    #[test]
    fn a_request_nobody_decided_on_is_unauthenticated_and_says_only_that() {
        assert_eq!(
            fields(&Access::default()),
            [("kfauth.decision", "unauthenticated")]
        );
        assert_eq!(fields(&Access::skipped()), [("kfauth.decision", "skipped")]);
    }

    #[test]
    fn an_allowed_request_names_its_user_and_issuer_and_its_review() {
        let mut access = Access::default();
        access.authenticated("https://dex.example.com", Some("alice@example.com"));
        access.reviewed(Some("get"), Some("inferenceservices"), Some("team-a"));
        assert_eq!(
            fields(&access),
            [
                ("kfauth.decision", "allowed"),
                ("kfauth.user", "alice@example.com"),
                ("kfauth.issuer", "https://dex.example.com"),
                ("kfauth.verb", "get"),
                ("kfauth.resource", "inferenceservices"),
                ("kfauth.namespace", "team-a"),
            ]
        );
    }

    #[test]
    fn a_refusal_gives_its_reason_word_and_cause() {
        let mut access = Access::default();
        access.refused(&Denial::because(Cause::Expired, true));
        assert_eq!(
            fields(&access),
            [
                ("kfauth.decision", "denied"),
                ("kfauth.reason", "token_expired"),
                ("kfauth.detail", "exp passed"),
            ]
        );
        let mut missing = Access::default();
        missing.refused(&Denial::because(Cause::NoToken, false));
        assert_eq!(missing.decision, Decision::Unauthenticated);
        assert_eq!(missing.reason, Some(Reason::TokenMissing));
        // A refusal after authentication keeps who was refused.
        let mut forbidden = Access::default();
        forbidden.authenticated("https://dex.example.com", Some("bob@example.com"));
        forbidden.refused(&Denial::new(Reason::Forbidden, true));
        assert_eq!(forbidden.decision, Decision::Denied);
        assert_eq!(forbidden.user.as_deref(), Some("bob@example.com"));
        assert_eq!(forbidden.detail, None);
        // A skipped request can still be refused (a header over its budget).
        let mut skipped = Access::skipped();
        skipped.refused(&Denial::new(Reason::HeaderTooLarge, false));
        assert_eq!(skipped.decision, Decision::Denied);
    }

    #[test]
    fn details_from_elsewhere_lose_control_characters_and_length() {
        let mut denial = Denial::new(Reason::Forbidden, true);
        denial.detail = Some("no rule\r\nx-injected: 1\u{7f}".into());
        let mut access = Access::default();
        access.refused(&denial);
        assert_eq!(access.detail.as_deref(), Some("no rule  x-injected: 1 "));
        access.reviewed(Some("get"), Some(&"é".repeat(200)), None);
        let resource = access.resource.unwrap_or_default();
        assert_eq!(resource.len(), MAX_VALUE_BYTES);
        assert!(resource.chars().all(|c| c == 'é'));
    }
}
