//! How Envoy reaches the stand-in: the cluster kfauth's callouts name, with
//! TLS that sends the in-cluster SNI and trusts only the test CA.

use super::server::ApiServer;
use super::tls::API_SERVER_SNI;
use crate::bootstrap::{Cluster, ClusterTls};

/// The API server's in-cluster host name.
pub const API_SERVER_HOST: &str = "kubernetes.default.svc.cluster.local";

/// The name Istio gives the API server's outbound cluster:
/// `outbound|443||kubernetes.default.svc.cluster.local`.
pub const API_SERVER_CLUSTER: &str = "outbound|443||kubernetes.default.svc.cluster.local";

/// A cluster named `name` to `127.0.0.1:port` over TLS: SNI
/// `kubernetes.default.svc`, certificate checked against `ca_pem` (inline).
pub fn api_server_cluster(name: &str, port: u16, ca_pem: &str) -> Cluster {
    Cluster::loopback(name, port).with_tls(ClusterTls::trusting_pem(Some(API_SERVER_SNI), ca_pem))
}

impl ApiServer {
    /// The Envoy cluster for this stand-in, named [`API_SERVER_CLUSTER`].
    pub fn envoy_cluster(&self) -> Cluster {
        self.envoy_cluster_named(API_SERVER_CLUSTER)
    }

    /// The Envoy cluster for this stand-in under another name.
    pub fn envoy_cluster_named(&self, name: &str) -> Cluster {
        api_server_cluster(name, self.port(), self.ca_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::istio_cluster_name;

    #[test]
    fn the_default_name_is_the_istio_one() {
        assert_eq!(API_SERVER_CLUSTER, istio_cluster_name(API_SERVER_HOST, 443));
    }
}
