//! Kubeflow's two key sources, on loopback behind the cluster names Istio
//! gives them, so that a pluginConfig with Kubeflow's own URLs runs unchanged:
//! Dex (`http://dex.auth.svc.cluster.local:5556/dex`, OpenID discovery, then
//! its keys) and `cluster-jwks-proxy` (the API server's service-account keys,
//! `/openid/v1/jwks`). Dex signs with [`Idp::shared`], the API server with
//! [`Idp::shared_second`].

use crate::bootstrap::istio_cluster_name;
use crate::jwks_server::discovery_document;
use crate::{Cluster, EnvoySettings, Idp, JwksMode, JwksServer};

pub const DEX_ISSUER: &str = "http://dex.auth.svc.cluster.local:5556/dex";
pub const DEX_HOST: &str = "dex.auth.svc.cluster.local";
pub const JWKS_PROXY_HOST: &str = "cluster-jwks-proxy.istio-system.svc.cluster.local";
pub const JWKS_PROXY_PATH: &str = "/openid/v1/jwks";
pub const DEX_DISCOVERY_PATH: &str = "/dex/.well-known/openid-configuration";

pub struct KubeflowKeys {
    pub jwks_proxy: JwksServer,
    pub dex: JwksServer,
}

impl KubeflowKeys {
    pub fn start() -> KubeflowKeys {
        let jwks_proxy = JwksServer::start_with(
            "127.0.0.1:0",
            JWKS_PROXY_PATH,
            JwksMode::Serve(Idp::shared_second().jwks_json()),
        );
        let dex = JwksServer::start_with(
            "127.0.0.1:0",
            "/dex/keys",
            JwksMode::Serve(Idp::shared().jwks_json()),
        );
        dex.route(
            DEX_DISCOVERY_PATH,
            JwksMode::Serve(discovery_document(
                DEX_ISSUER,
                &format!("{DEX_ISSUER}/keys"),
            )),
        );
        KubeflowKeys { jwks_proxy, dex }
    }

    /// `settings` with the clusters `outbound|80||cluster-jwks-proxy...` and
    /// `outbound|5556||dex.auth...` pointing at these servers.
    pub fn route(&self, settings: EnvoySettings) -> EnvoySettings {
        settings
            .with_cluster(Cluster::loopback(
                &istio_cluster_name(JWKS_PROXY_HOST, 80),
                self.jwks_proxy.port(),
            ))
            .with_cluster(Cluster::loopback(
                &istio_cluster_name(DEX_HOST, 5556),
                self.dex.port(),
            ))
    }
}
