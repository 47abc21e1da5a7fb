//! A stand-in for the Kubernetes API server, speaking its wire contract for
//! the two endpoints kfauth calls out to over HTTPS: SubjectAccessReview,
//! answered by evaluating RBAC objects (Kubernetes YAML) the way the RBAC
//! authorizer does, and TokenReview, answered from tokens a test registers.
//!
//! | module | concept |
//! | --- | --- |
//! | [`rbac`] | Role, ClusterRole, bindings; loading them from YAML |
//! | [`aggregation`] | ClusterRole aggregation by label selectors |
//! | [`authorizer`] | the RBAC authorizer: who may do what, and why |
//! | [`contract`] | request bodies as the server decodes and validates them |
//! | [`subject_access_review`] | the SubjectAccessReview endpoint |
//! | [`token_review`] | the TokenReview endpoint and its registered tokens |
//! | [`status`] | the `Status` error object |
//! | [`tls`] | the test CA and server certificate |
//! | [`server`] | the server: modes, counts, records, down and up |
//! | [`client`] | an HTTPS client trusting the test CA |
//! | [`envoy`] | the Envoy cluster that reaches the stand-in |
//! | [`fixtures`] | the project's Kubeflow-like RBAC fixtures |
//! | [`openapi`] | validating JSON against Kubernetes' OpenAPI schemas |
//! | [`conformance`] | the real schemas and roles in `../shared/data` |
//!
//! An end-to-end test starts it, points Envoy at it and reads what it saw:
//!
//! ```no_run
//! use kfauth_testkit::apiserver::{ApiServer, ApiMode};
//! use kfauth_testkit::EnvoySettings;
//! # let plugin_config = serde_json::json!({});
//! let api = ApiServer::start_with_fixtures();
//! api.register_token("sa-token", "system:serviceaccount:ns:runner", &[], &["kfauth"]);
//! let settings = EnvoySettings::for_test(plugin_config, 8080).with_cluster(api.envoy_cluster());
//! // ... requests through Envoy ...
//! assert_eq!(api.sar_count(), 1);
//! kfauth_testkit::apiserver::validate_sar_request(&api.last_sar_request().unwrap()).unwrap();
//! api.set_mode(ApiMode::Fail);
//! ```

pub mod aggregation;
pub mod authorizer;
pub mod client;
pub mod conformance;
pub mod contract;
pub mod envoy;
pub mod fixtures;
pub mod openapi;
pub mod rbac;
pub mod server;
pub mod status;
pub mod subject_access_review;
pub mod tls;
pub mod token_review;

#[cfg(test)]
mod rbac_tests;

pub use authorizer::{AccessRequest, Decision};
pub use client::ApiClient;
pub use conformance::{validate_sar_request, validate_token_review_request};
pub use envoy::{API_SERVER_CLUSTER, API_SERVER_HOST};
pub use rbac::Rbac;
pub use server::{ApiMode, ApiServer, Review, DEFAULT_BEARER_TOKEN, FOREIGN_AUDIENCE};
pub use subject_access_review::SAR_PATH;
pub use tls::{TestCa, API_SERVER_SNI};
pub use token_review::{API_AUDIENCE, TOKEN_REVIEW_PATH};
