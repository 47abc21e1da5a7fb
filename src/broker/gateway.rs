//! The gateway-wide table of review answers (`shared_decisions`) as the
//! broker uses it. Before a review is asked, an answer another worker
//! published is adopted. A review is asked by the worker that wins its
//! lease; the others park on it and look the table up on each tick, taking
//! the lease over should it lapse. An answer is published for the others; a
//! failure releases the lease (a failure is not shared: each worker then asks
//! for itself).

use std::time::Duration;

use super::answer::Source;
use super::callout::Outgoing;
use super::question::{Asking, Question};
use super::{Broker, CALLOUT_GRACE};
use crate::authz::remember_subject_access_review;
use crate::authz::subject_access_review::SubjectAccessReviewAnswer;
use crate::authz::token_review::TokenStatus;
use crate::outcome::{Outcome, Subject};
use crate::shared_decisions::{Answer, Claim, Lookup, Review, ReviewDigest};

/// A SubjectAccessReview answer as the table shares it (`None`: not shared).
pub fn shared_subject_access_review(answer: &SubjectAccessReviewAnswer) -> Option<Answer> {
    match answer {
        SubjectAccessReviewAnswer::Allowed => Some(Answer::Allowed),
        SubjectAccessReviewAnswer::Denied(reason) => Some(Answer::Denied {
            reason: reason.clone(),
        }),
        SubjectAccessReviewAnswer::Unusable(_) => None,
    }
}

/// A TokenReview answer as the table shares it (`None`: not shared).
pub fn shared_token_review(status: &TokenStatus) -> Option<Answer> {
    match status {
        TokenStatus::Authenticated(subject) => Some(Answer::Authenticated {
            user: subject.user.clone(),
            groups: subject.groups.clone(),
        }),
        TokenStatus::Rejected(why) => Some(Answer::Rejected { why: why.clone() }),
        TokenStatus::Unreviewed => None,
    }
}

/// How long a lease on a review lasts: its callout's timeout and the grace
/// after which this worker gives the callout up.
fn lease_for(outgoing: &Outgoing) -> Duration {
    outgoing.timeout.saturating_add(CALLOUT_GRACE)
}

impl Broker {
    /// The question a review outcome asks, and the review as the table digests it.
    fn review_of<'a>(&'a self, outcome: &'a Outcome) -> Option<(Question, Review<'a>)> {
        match outcome {
            Outcome::SubjectAccessReview { key, .. } => Some((
                Question::SubjectAccessReview(key.clone()),
                Review::Access { spec: key },
            )),
            Outcome::TokenReview { rule, token } => Some((
                Question::TokenReview {
                    rule: *rule,
                    digest: self.verified_tokens.digest(token),
                },
                Review::Token {
                    token,
                    audiences: self.audiences(*rule),
                },
            )),
            _ => None,
        }
    }

    /// Adopts an answer another worker published for the review `outcome`
    /// asks for, into the local cache until it expires there. True when
    /// adopted (deciding again then finds it). A review pending here is not
    /// looked up: its waiters get the answer.
    pub(super) fn adopt(&mut self, outcome: &Outcome, now: Duration) -> bool {
        let Some(gateway) = &self.gateway else {
            return false;
        };
        let Some((question, review)) = self.review_of(outcome) else {
            return false;
        };
        if self.questions.contains_key(&question) {
            return false;
        }
        let Some(digest) = gateway.digest(self.shared.as_ref(), &review) else {
            return false;
        };
        let Lookup::Answer { answer, expires } = gateway.lookup(self.shared.as_ref(), &digest, now)
        else {
            return false;
        };
        let ttl = expires.saturating_sub(now);
        match question {
            Question::SubjectAccessReview(key) => {
                let Some(answer) = adopted_subject_access_review(answer) else {
                    return false;
                };
                remember_subject_access_review(
                    &mut self.subject_access_reviews,
                    &key,
                    &answer,
                    ttl,
                    now,
                );
            }
            Question::TokenReview { digest, .. } => {
                let Some(status) = adopted_token_review(answer) else {
                    return false;
                };
                self.token_reviews.insert(digest, status, ttl, now);
            }
            Question::Jwks(_) => return false,
        }
        true
    }

    /// What a first request on a review does: lease it in the table and send
    /// it, or leave it to the worker that holds the lease. Without the table
    /// (or its key), the review is sent.
    pub(super) fn ask(&mut self, review: Review, outgoing: Outgoing, now: Duration) -> Asking {
        let claimed = self.gateway.as_ref().and_then(|gateway| {
            let digest = gateway.digest(self.shared.as_ref(), &review)?;
            let claim = gateway.lease(self.shared.as_mut(), &digest, now, lease_for(&outgoing));
            Some((digest, claim))
        });
        match claimed {
            None => {
                self.unsent.push_back(outgoing);
                Asking::default()
            }
            Some((digest, Claim::Won | Claim::Alone)) => {
                self.unsent.push_back(outgoing);
                Asking {
                    digest: Some(digest),
                    ..Asking::default()
                }
            }
            // Answered meanwhile: the next tick's look-up adopts it.
            Some((digest, Claim::Held { .. } | Claim::Answered { .. })) => Asking {
                digest: Some(digest),
                elsewhere: Some(outgoing),
                ..Asking::default()
            },
        }
    }

    /// On each tick, for every review another worker asks: adopt its answer
    /// once published, or send the review here once its lease has lapsed or
    /// was released.
    pub(super) fn poll_gateway(&mut self, now: Duration) {
        let Some(gateway) = &self.gateway else {
            return;
        };
        let mut answered = Vec::new();
        for (question, asking) in &mut self.questions {
            let (Some(digest), Some(outgoing)) = (&asking.digest, &asking.elsewhere) else {
                continue;
            };
            match gateway.lease(self.shared.as_mut(), digest, now, lease_for(outgoing)) {
                Claim::Held { .. } => {}
                Claim::Won | Claim::Alone => self.unsent.extend(asking.elsewhere.take()),
                Claim::Answered { answer, expires } => {
                    asking.elsewhere = None;
                    answered.push((question.clone(), answer, expires));
                }
            }
        }
        // An answer of the other kind cannot be about the review (its digest
        // holds the kind): it counts as no answer.
        for (question, answer, expires) in answered {
            let source = Source::Gateway { expires };
            match question {
                Question::SubjectAccessReview(key) => {
                    let answer = adopted_subject_access_review(answer).unwrap_or_else(|| {
                        SubjectAccessReviewAnswer::Unusable("an answer of another kind".into())
                    });
                    self.subject_access_review_heard(key, answer, source, now);
                }
                Question::TokenReview { .. } => {
                    let status = adopted_token_review(answer)
                        .ok_or_else(|| "an answer of another kind".to_string());
                    self.token_review_heard(question, status, source, now);
                }
                Question::Jwks(_) => {}
            }
        }
    }

    /// Publishes this worker's answer for `ttl` (`answer` `None`: releases the
    /// lease, so that waiting workers ask for themselves).
    pub(super) fn share(
        &mut self,
        digest: Option<ReviewDigest>,
        answer: Option<Answer>,
        ttl: Option<Duration>,
        now: Duration,
    ) {
        let (Some(gateway), Some(digest)) = (&self.gateway, digest) else {
            return;
        };
        match (answer, ttl) {
            (Some(answer), Some(ttl)) => {
                let expires = now.saturating_add(ttl);
                gateway.publish(self.shared.as_mut(), &digest, answer, expires, now);
            }
            _ => gateway.release(self.shared.as_mut(), &digest),
        }
    }
}

/// A SubjectAccessReview answer from the table (`None` for a TokenReview's).
fn adopted_subject_access_review(answer: Answer) -> Option<SubjectAccessReviewAnswer> {
    match answer {
        Answer::Allowed => Some(SubjectAccessReviewAnswer::Allowed),
        Answer::Denied { reason } => Some(SubjectAccessReviewAnswer::Denied(reason)),
        Answer::Authenticated { .. } | Answer::Rejected { .. } => None,
    }
}

/// A TokenReview answer from the table (`None` for a SubjectAccessReview's).
fn adopted_token_review(answer: Answer) -> Option<TokenStatus> {
    match answer {
        Answer::Authenticated { user, groups } => {
            Some(TokenStatus::Authenticated(Subject { user, groups }))
        }
        Answer::Rejected { why } => Some(TokenStatus::Rejected(why)),
        Answer::Allowed | Answer::Denied { .. } => None,
    }
}
