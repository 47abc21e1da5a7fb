//! The HTTP callouts the broker asks the host to send: key fetches (GET) and
//! reviews POSTed to the API server.

use std::time::Duration;

use super::question::Question;
use crate::authz::config::ApiServer;
use crate::keystore::{FetchPlan, FetchStage};

pub const SUBJECT_ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
pub const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

/// One callout to send: the host dispatches it and hands it back to
/// `Broker::on_dispatched` with the callout id (or why it was refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub cluster: String,
    /// Pseudo-headers first.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    pub question: Question,
    /// The key fetch this callout performs.
    pub(super) fetch: Option<FetchPlan>,
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A key fetch the key store planned.
pub fn fetch(plan: FetchPlan) -> Outgoing {
    let endpoint = &plan.endpoint;
    Outgoing {
        cluster: endpoint.cluster.clone(),
        headers: pairs(&[
            (":method", "GET"),
            (":path", &endpoint.path),
            (":authority", &endpoint.authority),
            (":scheme", &endpoint.scheme),
            ("accept", "application/json"),
        ]),
        body: None,
        timeout: plan.timeout,
        question: Question::Jwks(plan.rule),
        fetch: Some(plan),
    }
}

/// A review POSTed to the API server at `path`.
pub fn review(apiserver: &ApiServer, question: Question, path: &str, body: Vec<u8>) -> Outgoing {
    let mut headers = pairs(&[
        (":method", "POST"),
        (":path", path),
        (":authority", &apiserver.authority),
        (":scheme", "https"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
    ]);
    if let Some(bearer) = apiserver.bearer() {
        headers.push(("authorization".into(), bearer));
    }
    Outgoing {
        cluster: apiserver.cluster.clone(),
        headers,
        body: Some(body),
        timeout: apiserver.timeout,
        question,
        fetch: None,
    }
}

/// The debug line of a fetch once sent.
pub fn fetch_line(plan: &FetchPlan) -> String {
    let what = match plan.stage {
        FetchStage::Discovery => "OpenID configuration",
        FetchStage::Jwks => "JWKS",
    };
    format!("fetching {what} {}", plan.endpoint.uri)
}
