//! Fixed test keys and token helpers for the unit tests (native and wasm).
//! The keys were generated for these tests only; they guard nothing.

use base64::Engine;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::time::Duration;

use crate::request::RequestView;

pub const DEX: &str = "http://dex.auth.svc.cluster.local:5556/dex";
pub const NOW_SECS: u64 = 1_800_000_000;
pub const NOW: Duration = Duration::from_secs(NOW_SECS);

const RSA_1_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCegk+BvgHumF+T
AdnzMsPPR957Ov93de0JeGxhYszl0fDJuSRUEiFKDgFTYJ0iikakevVTt6h7SKUy
WGoMnzszna8s3vdfOFrmO4UBBxyieVvUnitwDqlmlpd/wOQmvo/AeJ+chMd7l6s3
2+DtSQhYVrgPKR2w9QeGtIAs7FdHRbC6GeZueyIfMrHMADCzJq+qi+wCrCFzMRcf
UbqThmLa7K+Xd//VQ9aESdNAMJFdwd2enp1JRclQowCr3Wp+vdZZx9wFTdTn1UJn
/0CEZ1NUeln+YkaiLUck3aWhJRVim93lkbNuM9EnOG7vYICI7aX47JNC1BODFrX/
vL5q6/C3AgMBAAECggEAJQ6O+uSKfBbYZTxuEUrBd2C0dTfWSL3jlC64m83m3CXI
NsjXYuY4LSF4Et+H7O7J1CNA3nkV5PiXUl1UMa46P3dyYDmiOHsq2R96GULp4Vwg
6WSvAAwVc3vqYD4euKYdYmBw5D0wi8bqCu2XOLI1xr1DW5v/qoKmZ0okmxwHzYvx
aQIGy3sv4T3oLheioiNcu2x6C3+DNfNRG+6ucq39hrsC/u1pe4OOxgsJl5wFDDc0
EDbREE7aa0ca13OTt7pF5fggmb7bjpDDhxft2W+uNnt0h3vqjr4GHceuqlg0kkHd
B1W+SXMBIeg4KS85Yub4lvQ7XItG2qwA4D5bsVcmZQKBgQDaALn3qaCTKjeSjC5u
MsJAic47vh55tTecqqFl1zN6j+yWsoeCKG12EcX7FQEW0kRSCiqLTBJpi+heOdHH
VCbPBuCDDz4ELtjubomS1b+WRI/A29ett5xJtX6NCZyQJhzU+3UtCFUlkSfPFjiH
cfeqZXSyb86//uaWzaTDPy9+7QKBgQC6IvlLnkQCJZkYJe68qmoVcKNDtnikCI17
TcUNNWuKa7Ck8kQaHDL+6vhXrXGEP6VoO/3z8ex+HgtPTYWdg4eawYn2V1KrZaE0
1yhiut5hnzblxy4Ss8Tyk+h3Xubd3g+EZ3AMig4/GVz5FPU8f4rDnK17eVf+VCUa
Db2FqifVswKBgDGvwrMA1VlVYO8kxhxVs1J0Vi3lqhqBRBiQB1Mn1lLT5M+AB0SS
JEipyl7srZ/e8rVkHcg74WJvAdogAYEV2/aJkbgtTCw15TmKtg5ia1U7cSw6rxCn
7ZYbKKnKjAWKuj2MxmsqIAX87H7ViLLONe1/TDazJwM5fKLYYfoiN5gNAoGBAIYD
gju4cjydd1FUlkON6p0PIO0ypj9rzPmW76Xn7UqW6HKJ3xBxdyHkaPMvdEiEToHy
l5AYgW34EaqCJQ5YUbzRVZRgIKw4ms1hj7kt08iziiH7uydJ+SWx6jBvyoa5R7DL
jHfqugEiMLdBKKPrLCxUVO9OWVVKnf/ZHrfq341TAoGBAKBzCBJMnmnU4AC2cuKU
+FpwkddurkqGVSY9XW5Yo1FypS7DOmHU3T+DOGL1ion931tl7Xbh40DBXNC7O/ay
ydQ/AP1jsyoz3oavTU2E97ve9nhtXsFyPy4hIeLQnQyA9VAK5U4nlAmXPsKybwx5
vK3lIbSd3B010hiEQvxwIVht
-----END PRIVATE KEY-----";
const RSA_2_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCm3GiVblPPTOuJ
iPOmdJurem8gNYfDaP40EuUJ/Fqr42ptK7fsDQBUJipove185p3VqZpDRHNMwn8g
BvvxKsAfkrbd6qCikvISJTCxJM9ahvsPZydGFwQk7Orz+MH99fB8gUQzwTBoPJ0r
LEg+DRYM2YyIOQuJWOouD2rIECawmDgKpwadf6J701miLczYbBRDFk+tAxoS2PQP
Kj+iAbDrk3MgxHAly9GLMUjh7HYDKtH9c6AL+RAUcrWhSXRjnsiLKwS24kW12lK8
6l6R6C8BKVpxLyyChygCakalEElwUgdWVgtsi53acxXr+aeIOb8wr+zgdzb0/Br+
G7koVLALAgMBAAECggEARzJZj5UlPpkwER219Mrhl0/k9aXRmXAFsztyrgmWuKwO
/6j9T8OWZdFpHAsaN8aBBydYcqZU2iZNLuG8A4G9u1sTGupfgy7XCiYDOjqeHR7m
JgLaL55nfsf2UoZMY+vaIo3Xh4vBd2CRoVfCNXPI+k+jFobcpMyjE2cxpU6663M/
WH22Oszh75e7mLjDNchvbxFilmrz61Gc2pBhejS6d0oWL7TBqq4tqb1ZJTmMPDR0
J/E3cypLAf/Z9VNNj+IPQAZXoHANM/pBvSY2ULAMNIGsq+U0DlRlfrkr4sBfTxCJ
CYQ9/7zd7bu71LUrO72zuWbGPfHlTpsC6GDZEQl6dQKBgQDUiPIihDvbpsz5b8uq
fTxZ1vp91rE3IUCVz8IjiVSoIptclG277KsaZVjiEo6rxud+Kczk7TrHeGy6lU1/
6LTBvuWXjyTpfhu7zVe2s4pJfs8ibWDIVG1bV6v0OB7JTM52AFGycS1QpkIAkkFM
Ih3rAAeWtdi2PxdNT52ZOlT2FQKBgQDI/D9ecqH+4e+qYz06L4ol6cq4dRPKgdHJ
EZk5jkNDSwthzEM1xMM96pA4wZUB6Ztz5sphdF7TNdfsXGSWDSR84oMM7A2rWfvY
zi+Qid6LknBAtOp7tlC61kAEU6V0qe0OtLBOdD6wRYLYINrr5h7o5t61zMyyDzWm
N2CZ3Qe1nwKBgE8sjPcqx5m185ngecCTUs4s9be3KOFes86bTLksSasw6St957sg
GUWGB6yAOUHooQgwzjFh5om0ZNzFDc/egqfCU4k4PAn3fqFhh5F6JMPoR4WNtYYr
XWmvqVEbLuzSff8bc1PEMZtftCq+UTDpbLfElQ8hww9xRV75j74rKsdZAoGAYbG7
W7184NgSF1CFwnK5RBSQZXkDVbwkrQfQ4xkzuNIRhkgzoz8xaDdMQ0pVk8hpt7zH
Qve94AycGFgQzJ82zT2NVgqn2lKzCH+wvyFE+7MCvXEzSU8ljqv2EiRWmI7AnBVY
XcpDbotbPpM51tDU1YDjYJtcJHEgMttYKXI2/SECgYEAlDe6hdFztdP2ZQBONMoZ
/I9I2WbitsBRogeQieigoF1CVfh9C1QbgYh7ZAM7+PCNnc9d8dzeS5nuLnBAsj/t
Z0u+jhPcVjPMF9p0MOHT1H0yojJbt8lb6Ky1IgTi666BFmVgCaXZlClg8vzn9Ls3
O2y4RzsUxVzNssqFNN8AdCA=
-----END PRIVATE KEY-----";
const EC_1_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBgRmWZDwUr8cHqsX
BXWHEJRn8OWAhwupuJpkEajFowOhRANCAAQdw1msu6Z36qqHkGtdCxrQgiiWCWKc
LRtp+IOrYQxAw6bouZ2UO53QoEe92/bIuGaB9NwC1/ebWLe6Q4wVw2m5
-----END PRIVATE KEY-----";
const ED_1_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIP+lsjO7AlRi2tf4/wppqu/IVVCbdqunCebLL09k2O7P
-----END PRIVATE KEY-----";

const RSA_1_N: &str = "noJPgb4B7phfkwHZ8zLDz0feezr_d3XtCXhsYWLM5dHwybkkVBIhSg4BU2CdIopGpHr1U7eoe0ilMlhqDJ87M52vLN73Xzha5juFAQcconlb1J4rcA6pZpaXf8DkJr6PwHifnITHe5erN9vg7UkIWFa4DykdsPUHhrSALOxXR0WwuhnmbnsiHzKxzAAwsyavqovsAqwhczEXH1G6k4Zi2uyvl3f_1UPWhEnTQDCRXcHdnp6dSUXJUKMAq91qfr3WWcfcBU3U59VCZ_9AhGdTVHpZ_mJGoi1HJN2loSUVYpvd5ZGzbjPRJzhu72CAiO2l-OyTQtQTgxa1_7y-auvwtw";
const EC_1_X: &str = "HcNZrLumd-qqh5BrXQsa0IIolglinC0bafiDq2EMQMM";
const EC_1_Y: &str = "pui5nZQ7ndCgR73b9si4ZoH03ALX95tYt7pDjBXDabk";
const ED_1_X: &str = "md5eM0CadebFiTOmv7cSZSUZSTnMHLRtLbFWF4Dfm_o";

pub fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

pub fn rsa_jwk(kid: &str, alg: Option<&str>) -> Value {
    let mut jwk = json!({"kty": "RSA", "kid": kid, "n": RSA_1_N, "e": "AQAB", "use": "sig"});
    if let Some(alg) = alg {
        jwk["alg"] = alg.into();
    }
    jwk
}

pub fn ec_jwk(kid: &str) -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": kid, "x": EC_1_X, "y": EC_1_Y})
}

pub fn ed_jwk(kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": ED_1_X})
}

/// An inline JWKS (a JSON string, as Istio's `jwks` field) with the RSA test key.
pub fn rsa_jwks_json() -> String {
    json!({"keys": [rsa_jwk("rsa-1", Some("RS256"))]}).to_string()
}

/// A config with one Dex rule whose inline JWKS holds every test key (no `alg`s).
pub fn all_keys_config() -> Value {
    let jwks = json!({"keys": [rsa_jwk("rsa-1", None), ec_jwk("ec-1"), ed_jwk("ed-1")]});
    json!({"jwtRules": [{"issuer": DEX, "jwks": jwks.to_string()}]})
}

pub fn standard_claims() -> Value {
    json!({
        "iss": DEX,
        "sub": "Cg1hbGljZQ",
        "aud": "kubeflow-oidc-authservice",
        "email": "alice@example.com",
        "groups": ["team-a", "team-b"],
        "iat": NOW_SECS - 10,
        "exp": NOW_SECS + 3600,
    })
}

/// Claims that sign as exactly `claims` (as `kfauth::cli::mint::exact_claims`,
/// which the wasm unit tests cannot reach: the CLI is native only).
pub(crate) fn claims_of(claims: &Value) -> JWTClaims<serde_json::Map<String, Value>> {
    JWTClaims {
        custom: claims.as_object().cloned().unwrap(),
        ..JWTClaims::new()
    }
}

/// Signs `claims` exactly as given (no added `exp` or `iat`) with a test key.
pub fn sign(alg: &str, kid: Option<&str>, claims: &Value) -> String {
    let claims = claims_of(claims);
    macro_rules! with_kid {
        ($key:expr) => {
            match kid {
                Some(kid) => $key.with_key_id(kid),
                None => $key,
            }
        };
    }
    match alg {
        "RS256" => with_kid!(RS256KeyPair::from_pem(RSA_1_PEM).unwrap()).sign(claims),
        "PS384" => with_kid!(PS384KeyPair::from_pem(RSA_1_PEM).unwrap()).sign(claims),
        "ES256" => with_kid!(ES256KeyPair::from_pem(EC_1_PEM).unwrap()).sign(claims),
        "EdDSA" => with_kid!(Ed25519KeyPair::from_pem(ED_1_PEM).unwrap()).sign(claims),
        other => panic!("no test key for {other}"),
    }
    .unwrap()
}

/// RS256 with a key that is not in any test JWKS, under a kid that is.
pub fn sign_with_other_rsa_key(kid: &str, claims: &Value) -> String {
    RS256KeyPair::from_pem(RSA_2_PEM)
        .unwrap()
        .with_key_id(kid)
        .sign(claims_of(claims))
        .unwrap()
}

/// `alg: none`, empty signature.
pub fn unsigned_token(kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": "none", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    format!("{}.{}.", b64(&header.to_string()), b64(&claims.to_string()))
}

/// HS256 whose secret is the RSA public key's modulus text (the key-confusion attack).
pub fn hs256_with_public_key(kid: &str, claims: &Value) -> String {
    HS256Key::from_bytes(RSA_1_N.as_bytes())
        .with_key_id(kid)
        .authenticate(claims_of(claims))
        .unwrap()
}

/// `GET path` on `authority` as the core sees it, the header lines as given
/// (names keep their case, so a test can send any).
pub fn get_request(authority: &str, path: &str, headers: &[(&str, &str)]) -> RequestView {
    RequestView {
        method: "GET".into(),
        path: path.into(),
        authority: authority.into(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        ..RequestView::default()
    }
}

/// `GET path` on `kubeflow` with one `cookie` header line per value.
pub fn with_cookies(path: &str, cookies: &[&str]) -> RequestView {
    let headers: Vec<(&str, &str)> = cookies.iter().map(|value| ("cookie", *value)).collect();
    get_request("kubeflow", path, &headers)
}
