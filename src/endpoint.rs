//! Where an HTTP callout goes: a `jwksUri` (or a discovered `jwks_uri`, or
//! an issuer's discovery document) resolved to what Envoy's
//! `dispatch_http_call` needs. Read at load time for the configuration and at
//! run time for the `jwks_uri` a discovery document names.

/// An HTTP endpoint, resolved to what an Envoy HTTP callout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub uri: String,
    /// Envoy cluster the callout goes to.
    pub cluster: String,
    /// `:authority` of the callout.
    pub authority: String,
    /// `:path` of the callout (with query).
    pub path: String,
    pub scheme: String,
}

/// Why a URL cannot be fetched from; its Display is the message users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    NotAbsolute(String),
    Scheme(String),
    NoUsableHost(String),
    Port(String),
    NoHost(String),
    /// `jwksCluster: ""`.
    EmptyCluster,
}

impl std::fmt::Display for EndpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointError::NotAbsolute(uri) => write!(f, "`{uri}` is not an absolute http(s) URL"),
            EndpointError::Scheme(uri) => write!(f, "`{uri}`: scheme must be http or https"),
            EndpointError::NoUsableHost(uri) => write!(f, "`{uri}` has no usable host"),
            EndpointError::Port(uri) => write!(f, "`{uri}` has an invalid port"),
            EndpointError::NoHost(uri) => write!(f, "`{uri}` has no host"),
            EndpointError::EmptyCluster => write!(f, "jwksCluster must not be empty"),
        }
    }
}

impl std::error::Error for EndpointError {}

impl Endpoint {
    /// Splits `uri` and names its Envoy cluster the way Istio names outbound
    /// clusters, `outbound|PORT||HOST` (80 for http, 443 for https by
    /// default), unless `cluster` names one.
    pub fn from_url(uri: &str, cluster: Option<&str>) -> Result<Endpoint, EndpointError> {
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| EndpointError::NotAbsolute(uri.into()))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            _ => return Err(EndpointError::Scheme(uri.into())),
        };
        let (authority, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(EndpointError::NoUsableHost(uri.into()));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port: u16 = port.parse().map_err(|_| EndpointError::Port(uri.into()))?;
                (host, port)
            }
            _ => (authority, default_port),
        };
        if host.is_empty() {
            return Err(EndpointError::NoHost(uri.into()));
        }
        let cluster = match cluster {
            Some("") => return Err(EndpointError::EmptyCluster),
            Some(name) => name.to_string(),
            None => format!("outbound|{port}||{host}"),
        };
        Ok(Endpoint {
            uri: uri.to_string(),
            cluster,
            authority: authority.to_string(),
            path: path.split('#').next().unwrap_or("/").to_string(),
            scheme: scheme.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn default_cluster_ports_follow_the_scheme() {
        assert_eq!(
            Endpoint::from_url("https://login.example.com/keys", None)
                .unwrap()
                .cluster,
            "outbound|443||login.example.com"
        );
        assert_eq!(
            Endpoint::from_url("http://idp/keys", None).unwrap().cluster,
            "outbound|80||idp"
        );
        assert_eq!(
            Endpoint::from_url("http://idp:9000/k?x=1", Some("my-cluster"))
                .unwrap()
                .cluster,
            "my-cluster"
        );
        assert!(Endpoint::from_url("ftp://idp/keys", None).is_err());
        assert!(Endpoint::from_url("idp/keys", None).is_err());
        assert!(Endpoint::from_url("http://idp:port/keys", None).is_err());
    }
}
