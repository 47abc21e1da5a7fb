//! Envoy's part, offline: the callouts the broker asks for are answered from
//! the JWKS files and the review answer given on the command line.

use serde_json::{json, Value};

use super::Inputs;
use crate::broker::callout::Outgoing;
use crate::broker::question::Question;
use crate::broker::Broker;
use crate::config::Config;
use crate::jwt_rule::KeySource;
use crate::verify::decode;

/// What the API server answers every review with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewAnswer {
    Allowed,
    Denied,
    /// No usable answer (kfauth sees HTTP 503).
    Unavailable,
    /// This body, with HTTP 200.
    Document(Vec<u8>),
}

impl ReviewAnswer {
    /// `allowed`, `denied`, `unavailable`; anything else is a file's content.
    pub fn from_word(word: &str) -> Option<ReviewAnswer> {
        match word {
            "allowed" => Some(ReviewAnswer::Allowed),
            "denied" => Some(ReviewAnswer::Denied),
            "unavailable" => Some(ReviewAnswer::Unavailable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Every callout was answered.
    All,
    /// A review waits for an answer nobody gave.
    Stopped,
}

pub struct Answers<'a> {
    config: &'a Config,
    inputs: &'a Inputs,
    next_id: u32,
    /// A SubjectAccessReview or TokenReview was asked.
    pub reviewed: bool,
}

impl<'a> Answers<'a> {
    pub fn new(config: &'a Config, inputs: &'a Inputs) -> Answers<'a> {
        Answers {
            config,
            inputs,
            next_id: 1,
            reviewed: false,
        }
    }

    /// Answers the callouts the broker wants sent, noting each in `lines`.
    pub fn serve(&mut self, broker: &mut Broker, lines: &mut Vec<String>) -> Answered {
        let now = self.inputs.now;
        while let Some(outgoing) = broker.poll_callout() {
            let Some((status, body)) = self.answer(&outgoing, lines) else {
                return Answered::Stopped;
            };
            let id = self.next_id;
            self.next_id = self.next_id.saturating_add(1);
            broker.on_dispatched(outgoing, Ok(id), now);
            broker.on_answer(id, status, &body, now);
        }
        Answered::All
    }

    /// The HTTP status and body of the answer; `None` for a review without one.
    fn answer(
        &mut self,
        outgoing: &Outgoing,
        lines: &mut Vec<String>,
    ) -> Option<(Option<&'static str>, Vec<u8>)> {
        let path = header(outgoing, ":path");
        self.reviewed |= !matches!(outgoing.question, Question::Jwks(_));
        match &outgoing.question {
            Question::Jwks(rule) => Some(self.keys(*rule, path, lines)),
            Question::TokenReview { .. } => {
                let sent = body_json(outgoing);
                let mut shown = sent.clone();
                if let Some(token) = shown.pointer_mut("/spec/token") {
                    *token = Value::String("<the bearer token>".into());
                }
                lines.push(format!("review: POST {path} {shown}"));
                let answer = self.inputs.review_answer.as_ref()?;
                let (status, body) = token_review_answer(answer, &sent);
                lines.push(format!(
                    "review: the API server answers {}",
                    shown_answer(status, &body)
                ));
                Some((status, body))
            }
            Question::SubjectAccessReview(_) => {
                lines.push(format!("review: POST {path} {}", body_json(outgoing)));
                let answer = self.inputs.review_answer.as_ref()?;
                let (status, body) = access_review_answer(answer);
                lines.push(format!(
                    "review: the API server answers {}",
                    shown_answer(status, &body)
                ));
                Some((status, body))
            }
        }
    }

    /// A key fetch of `rule`: the discovery document (made up: it leads to
    /// the JWKS file) or the JWKS file; no file: the fetch fails.
    fn keys(
        &self,
        rule: usize,
        path: &str,
        lines: &mut Vec<String>,
    ) -> (Option<&'static str>, Vec<u8>) {
        let Some(rule) = self.config.rules.get(rule) else {
            return (None, Vec::new());
        };
        let issuer = &rule.issuer;
        if let KeySource::Discovery { document, .. } = &rule.keys {
            if document.path == path {
                let jwks_uri = format!("{}/keys", issuer.trim_end_matches('/'));
                lines.push(format!(
                    "keys: discovery for `{issuer}` (offline: its jwks_uri stands for the --jwks file)"
                ));
                let document = json!({"issuer": issuer, "jwks_uri": jwks_uri});
                return (Some("200"), document.to_string().into_bytes());
            }
        }
        match self.inputs.jwks.iter().find(|(name, _)| name == issuer) {
            Some((_, body)) => {
                lines.push(format!("keys: JWKS of `{issuer}` from --jwks"));
                (Some("200"), body.clone())
            }
            None => {
                lines.push(format!(
                    "keys: no --jwks for `{issuer}`: its fetch fails, as when the issuer is unreachable"
                ));
                (None, Vec::new())
            }
        }
    }
}

fn header<'o>(outgoing: &'o Outgoing, name: &str) -> &'o str {
    outgoing
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

fn body_json(outgoing: &Outgoing) -> Value {
    outgoing
        .body
        .as_deref()
        .and_then(|body| serde_json::from_slice(body).ok())
        .unwrap_or(Value::Null)
}

fn shown_answer(status: Option<&str>, body: &[u8]) -> String {
    format!(
        "HTTP {} {}",
        status.unwrap_or("(none)"),
        String::from_utf8_lossy(body)
    )
}

/// The API server's answer to a SubjectAccessReview.
fn access_review_answer(answer: &ReviewAnswer) -> (Option<&'static str>, Vec<u8>) {
    let status = match answer {
        ReviewAnswer::Allowed => json!({"allowed": true}),
        ReviewAnswer::Denied => json!({"allowed": false}),
        ReviewAnswer::Unavailable => return (Some("503"), Vec::new()),
        ReviewAnswer::Document(body) => return (Some("200"), body.clone()),
    };
    let review = json!({"apiVersion": "authorization.k8s.io/v1",
                        "kind": "SubjectAccessReview", "status": status});
    (Some("200"), review.to_string().into_bytes())
}

/// The API server's answer to the TokenReview `sent`. Allowed: the token's
/// `sub` with the groups Kubernetes gives a service account, and the
/// audiences asked for.
fn token_review_answer(answer: &ReviewAnswer, sent: &Value) -> (Option<&'static str>, Vec<u8>) {
    let status = match answer {
        ReviewAnswer::Allowed => {
            let sub = sent
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .and_then(|token| decode(token).ok())
                .and_then(|token| {
                    token
                        .claims
                        .get("sub")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default();
            // system:serviceaccount:NAMESPACE:NAME
            let namespace = sub.split(':').nth(2).unwrap_or_default();
            let mut groups = vec!["system:serviceaccounts".to_string()];
            if !namespace.is_empty() {
                groups.push(format!("system:serviceaccounts:{namespace}"));
            }
            groups.push("system:authenticated".into());
            let mut status = json!({"authenticated": true,
                                    "user": {"username": sub, "groups": groups}});
            if let (Some(audiences), Some(status)) =
                (sent.pointer("/spec/audiences"), status.as_object_mut())
            {
                status.insert("audiences".into(), audiences.clone());
            }
            status
        }
        ReviewAnswer::Denied => json!({"authenticated": false, "error": "token rejected"}),
        ReviewAnswer::Unavailable => return (Some("503"), Vec::new()),
        ReviewAnswer::Document(body) => return (Some("200"), body.clone()),
    };
    let review = json!({"apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview", "status": status});
    (Some("200"), review.to_string().into_bytes())
}
