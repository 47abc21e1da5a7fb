//! How an answer settles a question: a key fetch's result goes to the key
//! store, a review's answer to its cache (and to the gateway-wide table), and
//! every request waiting on the question is decided again, let go or refused.

use std::time::Duration;

use super::event::{Level, Metric};
use super::gateway::{shared_subject_access_review, shared_token_review};
use super::question::{Pass, Question, Then};
use super::{callout, Broker, Resume};
use crate::access::Access;
use crate::authz::config::FailureMode;
use crate::authz::subject_access_review::{parse_subject_access_review, SubjectAccessReviewAnswer};
use crate::authz::token_review::{parse_token_review, TokenStatus, TOKEN_REVIEW_TTL};
use crate::authz::{
    remember_subject_access_review, subject_access_review_ttl, subject_access_review_verdict,
    token_review_answered,
};
use crate::keystore::FetchResult;
use crate::outcome::{Denial, Reason};

/// How a question was answered.
pub enum Heard<'a> {
    /// An HTTP response (`None`: no response at all, a timeout or reset).
    Response(Option<&'a str>, &'a [u8]),
    /// The host refused to send the callout to `cluster` (with its status).
    NotSent { cluster: String, status: String },
}

/// Where a review's answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This worker's own callout: cached for the configured TTL, and shared.
    Callout,
    /// Another worker's, through the gateway-wide table: cached until it expires there.
    Gateway { expires: Duration },
}

impl Broker {
    /// A question was answered (or could not be asked).
    pub(super) fn heard(&mut self, question: Question, heard: Heard, now: Duration) {
        match question {
            Question::Jwks(rule) => self.keys_heard(rule, heard, now),
            Question::SubjectAccessReview(key) => {
                let answer = match heard {
                    Heard::Response(status, body) => parse_subject_access_review(status, body),
                    Heard::NotSent { cluster, status } => {
                        self.warn_not_sent(&cluster, &status);
                        SubjectAccessReviewAnswer::Unusable("dispatch refused".into())
                    }
                };
                self.subject_access_review_heard(key, answer, Source::Callout, now);
            }
            Question::TokenReview { rule, digest } => {
                let audiences = self.audiences(rule);
                let parsed = match heard {
                    Heard::Response(status, body) => parse_token_review(status, body, audiences),
                    Heard::NotSent { cluster, status } => {
                        self.warn_not_sent(&cluster, &status);
                        Err("dispatch refused".to_string())
                    }
                };
                let question = Question::TokenReview { rule, digest };
                self.token_review_heard(question, parsed, Source::Callout, now);
            }
        }
    }

    fn warn_not_sent(&mut self, cluster: &str, status: &str) {
        self.log(
            Level::Warn,
            format!("cannot reach the API server through cluster `{cluster}` ({status}): is it defined?"),
        );
    }

    fn keys_heard(&mut self, rule: usize, heard: Heard, now: Duration) {
        let answer = match heard {
            Heard::Response(Some("200"), body) => Ok(body),
            Heard::Response(Some(code), _) => Err(format!("HTTP {code}")),
            Heard::Response(None, _) => Err("no response (timeout or connection failure)".into()),
            Heard::NotSent { cluster, status } => Err(format!(
                "cannot reach cluster `{cluster}` ({status}): is it defined?"
            )),
        };
        let result =
            self.keys
                .fetch_answered(&self.config, rule, answer, self.shared.as_mut(), now);
        let source = self
            .config
            .rules
            .get(rule)
            .map(|rule| format!("{} ({})", rule.issuer, rule.keys.location()))
            .unwrap_or_default();
        match result {
            FetchResult::Next(plan) => {
                self.unsent.push_back(callout::fetch(plan));
                return;
            }
            FetchResult::Succeeded { keys, skipped } => {
                self.count(Metric::FetchSucceeded);
                self.log(
                    Level::Info,
                    format!("fetched keys of {source}: {keys} usable"),
                );
                for note in skipped {
                    self.log(
                        Level::Warn,
                        format!("keys of {source}: skipped a key: {note}"),
                    );
                }
            }
            FetchResult::Failed(why) => {
                self.count(Metric::FetchFailed);
                self.log(
                    Level::Warn,
                    format!(
                        "fetching keys of {source} failed: {why}; keeping the last good keys, if any"
                    ),
                );
            }
        }
        let asking = self
            .questions
            .remove(&Question::Jwks(rule))
            .unwrap_or_default();
        self.decide_again(asking.waiters, Pass::AfterKeys, now);
    }

    /// Caches a SubjectAccessReview's answer (and shares this worker's own),
    /// then lets its waiters go on or answers them.
    pub(super) fn subject_access_review_heard(
        &mut self,
        key: String,
        answer: SubjectAccessReviewAnswer,
        source: Source,
        now: Duration,
    ) {
        let asking = self
            .questions
            .remove(&Question::SubjectAccessReview(key.clone()))
            .unwrap_or_default();
        if let SubjectAccessReviewAnswer::Unusable(why) = &answer {
            self.log(Level::Warn, format!("SubjectAccessReview failed: {why}"));
        }
        let Some(authorization) = self.config.authorization.as_ref() else {
            return;
        };
        let verdict = subject_access_review_verdict(authorization, &answer);
        let ttl = match source {
            Source::Callout => subject_access_review_ttl(authorization, &answer),
            Source::Gateway { expires } => Some(expires.saturating_sub(now)),
        };
        if let Some(ttl) = ttl {
            remember_subject_access_review(
                &mut self.subject_access_reviews,
                &key,
                &answer,
                ttl,
                now,
            );
        }
        if source == Source::Callout {
            self.share(
                asking.digest,
                shared_subject_access_review(&answer),
                ttl,
                now,
            );
        }
        for waiter in asking.waiters {
            // Only SubjectAccessReview waiters wait here.
            let Then::Allow(edits, access) = waiter.then else {
                continue;
            };
            let verdict = match &verdict {
                None => {
                    self.count(Metric::AuthzAllowed);
                    self.count(Metric::Allowed);
                    self.proceed(&waiter.view, edits, *access)
                }
                Some(denial) => {
                    self.count_refusal(denial.reason);
                    self.refuse(&waiter.view, denial, *access)
                }
            };
            self.resumes.push_back(Resume {
                context: waiter.context,
                verdict,
            });
        }
    }

    /// Applies `failureMode` to a TokenReview's answer, caches what is known
    /// of the token (and shares this worker's own answer), and decides again
    /// for its waiters.
    pub(super) fn token_review_heard(
        &mut self,
        question: Question,
        parsed: Result<TokenStatus, String>,
        source: Source,
        now: Duration,
    ) {
        let Question::TokenReview { digest, .. } = question else {
            return;
        };
        let asking = self.questions.remove(&question).unwrap_or_default();
        let status = match source {
            Source::Callout => {
                if let Err(why) = &parsed {
                    self.log(Level::Warn, format!("TokenReview failed: {why}"));
                }
                let failure_mode = self
                    .config
                    .authorization
                    .as_ref()
                    .map_or(FailureMode::Deny, |authorization| {
                        authorization.failure_mode
                    });
                let status = token_review_answered(
                    failure_mode,
                    &mut self.token_reviews,
                    digest,
                    parsed,
                    now,
                );
                self.count(match status {
                    Some(TokenStatus::Authenticated(_)) => Metric::TokenReviewAllowed,
                    Some(TokenStatus::Rejected(_)) => Metric::TokenReviewDenied,
                    Some(TokenStatus::Unreviewed) | None => Metric::TokenReviewError,
                });
                let shared = status.as_ref().and_then(shared_token_review);
                self.share(asking.digest, shared, Some(TOKEN_REVIEW_TTL), now);
                status
            }
            Source::Gateway { expires } => parsed.ok().inspect(|status| {
                let ttl = expires.saturating_sub(now);
                self.token_reviews.insert(digest, status.clone(), ttl, now);
            }),
        };
        if status.is_some() {
            self.decide_again(asking.waiters, Pass::AfterTokenReview, now);
            return;
        }
        let denial = Denial::new(Reason::AuthorizerUnavailable, true);
        for waiter in asking.waiters {
            self.count_refusal(denial.reason);
            let verdict = self.refuse(&waiter.view, &denial, Access::default());
            self.resumes.push_back(Resume {
                context: waiter.context,
                verdict,
            });
        }
    }
}
