//! Test and demo support for kfauth: a real Envoy running the built module,
//! an identity provider that mints good and bad tokens, a JWKS endpoint and
//! an echo upstream, all on loopback.
//!
//! | module | concept |
//! | --- | --- |
//! | [`idp`] | signing keys, their JWKS, minted tokens |
//! | [`forge`] | hand-made and malicious tokens |
//! | [`listener`] | listening on loopback: backlog, accept loop, open connections |
//! | [`http1`] | HTTP/1.1 framing for every client and server here |
//! | [`serve`] | a background HTTP server on loopback, a thread per connection |
//! | [`apiserver`] | the Kubernetes API server stand-in: HTTPS, RBAC-evaluated SubjectAccessReviews, TokenReviews |
//! | [`jwks_server`] | a JWKS (and OIDC discovery) endpoint that counts hits, can fail, stop and restart |
//! | [`echo`] | the upstream that reports what it received |
//! | [`bootstrap`] | the Envoy bootstrap YAML (tests and `envoy/envoy.yaml`) |
//! | [`envoy`] | running Envoy, waiting for it, reading its log |
//! | [`gateway`] | Envoy + echo upstream, what most scenarios start |
//! | [`istio`] | Istio's `jwt_authn` and RBAC filter configs for RequestAuthentication and AuthorizationPolicy |
//! | [`client`] | the HTTP clients (curl-shaped, raw) and their responses |
//! | [`expect`] | assertions for kfauth's response contract |
//! | [`plugin_config`] | pluginConfig building blocks for scenarios |
//! | [`scenarios`] | running a group of scenarios against one setup |
//! | [`stats`] | Envoy's statistics, looked up by kfauth's metric names |
//! | [`kustomize`] | rendering `wasmplugin/` Kustomizations with `kubectl kustomize` |
//! | [`wait`] | waiting for an observable condition with a deadline |
//! | [`demo`] | the `make run` demo: ports, pluginConfig, token endpoint |

pub mod apiserver;
pub mod bootstrap;
pub mod client;
pub mod demo;
pub mod echo;
pub mod envoy;
pub mod expect;
pub mod forge;
pub mod gateway;
pub mod http1;
pub mod idp;
pub mod istio;
pub mod jwks_server;
pub mod kubeflow_keys;
pub mod kustomize;
pub mod listener;
pub mod plugin_config;
pub mod scenarios;
pub mod serve;
pub mod stats;
pub mod wait;

pub use apiserver::ApiServer;
pub use bootstrap::{render_envoy_yaml, AccessLog, Cluster, ClusterTls, EnvoySettings, Route};
pub use client::HttpResponse;
/// The echo upstream under the name load scenarios knew it by.
pub use echo::EchoServer as Upstream;
pub use echo::{EchoServer, Echoed};
pub use envoy::Envoy;
pub use gateway::Gateway;
pub use idp::{standard_claims, Alg, Idp};
pub use jwks_server::{JwksMode, JwksServer};
pub use stats::Stats;
