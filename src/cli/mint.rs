//! `kfauth token` and `kfauth jwks`: a signed test token from a local private
//! key, and the public JWKS that verifies it, for trying a gateway out (never
//! for production identities).
//!
//! Keys are PEM: RSA as PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA
//! PRIVATE KEY`); EC P-256/P-384 as PKCS#8 or SEC1 (`BEGIN EC PRIVATE KEY`,
//! what `openssl ecparam -genkey` writes); Ed25519 as PKCS#8. Anything else
//! is refused with a message naming the format found.

use std::time::Duration;

use jwt_simple::prelude::*;
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Map, Value};

use crate::jwks::Algorithm;

/// `--ttl` when none is given.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// A private key read from PEM, by type.
pub enum SigningKey {
    /// PEM as given (PKCS#1 or PKCS#8); jwt-simple reads both.
    Rsa(String),
    /// The private scalar.
    P256(Vec<u8>),
    P384(Vec<u8>),
    /// PKCS#8 PEM as given.
    Ed25519(String),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        write!(f, "SigningKey({})", self.kind())
    }
}

/// The label of the first PEM block: `PRIVATE KEY`, `EC PRIVATE KEY`, ...
fn pem_label(pem: &str) -> Option<&str> {
    let after = pem.split_once("-----BEGIN ")?.1;
    Some(after.split_once("-----")?.0.trim())
}

impl SigningKey {
    pub fn kind(&self) -> &'static str {
        match self {
            SigningKey::Rsa(_) => "RSA",
            SigningKey::P256(_) => "EC P-256",
            SigningKey::P384(_) => "EC P-384",
            SigningKey::Ed25519(_) => "Ed25519",
        }
    }

    /// Reads a private key; the error names the format that was found.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let Some(label) = pem_label(pem) else {
            return Err("not a PEM key (no `-----BEGIN ...-----` line); give a private key in PEM: PKCS#8 (BEGIN PRIVATE KEY), PKCS#1 RSA (BEGIN RSA PRIVATE KEY) or SEC1 EC (BEGIN EC PRIVATE KEY)".into());
        };
        match label {
            "RSA PRIVATE KEY" => RS256KeyPair::from_pem(pem)
                .map(|_| SigningKey::Rsa(pem.to_string()))
                .map_err(|problem| format!("PKCS#1 RSA private key (BEGIN RSA PRIVATE KEY) that cannot be used: {problem}")),
            "EC PRIVATE KEY" => {
                if let Ok(key) = p256::SecretKey::from_sec1_pem(pem) {
                    return Ok(SigningKey::P256(key.to_bytes().to_vec()));
                }
                if let Ok(key) = p384::SecretKey::from_sec1_pem(pem) {
                    return Ok(SigningKey::P384(key.to_bytes().to_vec()));
                }
                Err("SEC1 EC private key (BEGIN EC PRIVATE KEY) that is not on P-256 or P-384 (the curves of ES256 and ES384), or is damaged".into())
            }
            "PRIVATE KEY" => {
                if RS256KeyPair::from_pem(pem).is_ok() {
                    return Ok(SigningKey::Rsa(pem.to_string()));
                }
                if let Ok(key) = p256::SecretKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::P256(key.to_bytes().to_vec()));
                }
                if let Ok(key) = p384::SecretKey::from_pkcs8_pem(pem) {
                    return Ok(SigningKey::P384(key.to_bytes().to_vec()));
                }
                if Ed25519KeyPair::from_pem(pem).is_ok() {
                    return Ok(SigningKey::Ed25519(pem.to_string()));
                }
                Err("PKCS#8 private key (BEGIN PRIVATE KEY) that is none of RSA (2048 bits or more), EC P-256, EC P-384 or Ed25519, or is damaged".into())
            }
            "ENCRYPTED PRIVATE KEY" => Err("encrypted PKCS#8 private key (BEGIN ENCRYPTED PRIVATE KEY): decrypt it first, e.g. `openssl pkey -in KEY.pem -out plain.pem`".into()),
            "OPENSSH PRIVATE KEY" => Err("OpenSSH private key (BEGIN OPENSSH PRIVATE KEY): convert it to PKCS#8, e.g. `ssh-keygen -p -m PKCS8 -f KEY`".into()),
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => Err(format!(
                "{label} (BEGIN {label}): signing needs the private key"
            )),
            other => Err(format!(
                "PEM block `{other}` is not a private key kfauth reads (PKCS#8, PKCS#1 RSA or SEC1 EC)"
            )),
        }
    }

    /// The algorithms this key signs with; the first is the default.
    pub fn algorithms(&self) -> &'static [Algorithm] {
        match self {
            SigningKey::Rsa(_) => &Algorithm::RSA,
            SigningKey::P256(_) => &[Algorithm::ES256],
            SigningKey::P384(_) => &[Algorithm::ES384],
            SigningKey::Ed25519(_) => &[Algorithm::EdDSA],
        }
    }

    /// `algorithm`, or the key's default; an error when it does not fit the key.
    pub fn algorithm(&self, algorithm: Option<Algorithm>) -> Result<Algorithm, String> {
        let fitting = self.algorithms();
        match algorithm {
            None => fitting
                .first()
                .copied()
                .ok_or_else(|| "no algorithm for this key".to_string()),
            Some(algorithm) if fitting.contains(&algorithm) => Ok(algorithm),
            Some(algorithm) => Err(format!(
                "--alg {} does not fit the {} key (use {})",
                algorithm.name(),
                self.kind(),
                fitting
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Signs `claims` with `algorithm` (one of [`SigningKey::algorithms`]),
    /// and gives the token and the public key as a JWK (with `kid` and `alg`).
    pub fn sign(
        &self,
        algorithm: Algorithm,
        kid: Option<&str>,
        claims: Map<String, Value>,
    ) -> Result<(String, String), String> {
        let claims = exact_claims(claims);
        let problem = |what: jwt_simple::Error| format!("{what}");
        macro_rules! sign_with {
            ($key:expr) => {{
                let mut key = $key.map_err(problem)?;
                if let Some(kid) = kid {
                    key = key.with_key_id(kid);
                }
                let jwk = key.public_key().to_jwk();
                Ok((key.sign(claims).map_err(problem)?, jwk))
            }};
        }
        match (self, algorithm) {
            (SigningKey::Rsa(pem), Algorithm::RS256) => sign_with!(RS256KeyPair::from_pem(pem)),
            (SigningKey::Rsa(pem), Algorithm::RS384) => sign_with!(RS384KeyPair::from_pem(pem)),
            (SigningKey::Rsa(pem), Algorithm::RS512) => sign_with!(RS512KeyPair::from_pem(pem)),
            (SigningKey::Rsa(pem), Algorithm::PS256) => sign_with!(PS256KeyPair::from_pem(pem)),
            (SigningKey::Rsa(pem), Algorithm::PS384) => sign_with!(PS384KeyPair::from_pem(pem)),
            (SigningKey::Rsa(pem), Algorithm::PS512) => sign_with!(PS512KeyPair::from_pem(pem)),
            (SigningKey::P256(raw), Algorithm::ES256) => sign_with!(ES256KeyPair::from_bytes(raw)),
            (SigningKey::P384(raw), Algorithm::ES384) => sign_with!(ES384KeyPair::from_bytes(raw)),
            (SigningKey::Ed25519(pem), Algorithm::EdDSA) => {
                sign_with!(Ed25519KeyPair::from_pem(pem))
            }
            (key, algorithm) => Err(key.algorithm(Some(algorithm)).err().unwrap_or_default()),
        }
    }

    /// The public JWKS (`{"keys":[JWK]}`) that verifies what [`SigningKey::sign`]
    /// signs with `algorithm` and `kid`.
    pub fn jwks(&self, algorithm: Algorithm, kid: Option<&str>) -> Result<Value, String> {
        let (_, jwk) = self.sign(algorithm, kid, Map::new())?;
        let jwk: Value = serde_json::from_str(&jwk).map_err(|problem| problem.to_string())?;
        Ok(serde_json::json!({ "keys": [jwk] }))
    }
}

/// Claims for jwt-simple that serialize to exactly `claims`: every
/// registered field left unset (jwt-simple then adds none), the whole object
/// in the flattened custom part.
pub fn exact_claims(claims: Map<String, Value>) -> JWTClaims<Map<String, Value>> {
    JWTClaims {
        custom: claims,
        ..JWTClaims::new()
    }
}

/// The claims of a test token. The options set `iss`, `sub`, `aud`, `email`,
/// `groups`, `iat` (now) and `exp` (now + ttl); `extra` (`--claim`) sets any
/// claim, registered ones included, and wins over those defaults (`exp` in
/// the past makes an expired token). A claim set both by its option and by
/// `--claim`, or twice by `--claim`, is refused by [`ClaimSet::conflicts`].
#[derive(Debug, Default)]
pub struct ClaimSet {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// `--ttl`, when given.
    pub ttl: Option<Duration>,
    /// `--claim NAME=VALUE`, in order.
    pub extra: Vec<(String, Value)>,
}

impl ClaimSet {
    /// A usage problem of the options, if any: the same claim given twice, or no issuer.
    pub fn conflicts(&self) -> Result<(), String> {
        let options: [(&str, &str, bool); 6] = [
            ("iss", "--issuer", self.issuer.is_some()),
            ("sub", "--sub", self.subject.is_some()),
            ("aud", "--aud", !self.audiences.is_empty()),
            ("email", "--email", self.email.is_some()),
            ("groups", "--groups", !self.groups.is_empty()),
            ("exp", "--ttl", self.ttl.is_some()),
        ];
        for (index, (name, _)) in self.extra.iter().enumerate() {
            if self
                .extra
                .iter()
                .take(index)
                .any(|(earlier, _)| earlier == name)
            {
                return Err(format!("--claim {name}= is given twice"));
            }
            if let Some((_, option, _)) = options
                .iter()
                .find(|(claim, _, given)| *given && claim == name)
            {
                return Err(format!(
                    "--claim {name}= and {option} both set `{name}`; give one of them"
                ));
            }
        }
        if self.issuer.is_none() && !self.extra.iter().any(|(name, _)| name == "iss") {
            return Err("--issuer is required (or --claim iss=...)".into());
        }
        Ok(())
    }

    /// The token's claims at `now` (since the epoch).
    pub fn claims(&self, now: Duration) -> Map<String, Value> {
        let mut claims = Map::new();
        if let Some(issuer) = &self.issuer {
            claims.insert("iss".into(), Value::String(issuer.clone()));
        }
        if let Some(subject) = &self.subject {
            claims.insert("sub".into(), Value::String(subject.clone()));
        }
        match self.audiences.as_slice() {
            [] => {}
            [one] => {
                claims.insert("aud".into(), Value::String(one.clone()));
            }
            many => {
                claims.insert("aud".into(), serde_json::json!(many));
            }
        }
        if let Some(email) = &self.email {
            claims.insert("email".into(), Value::String(email.clone()));
        }
        if !self.groups.is_empty() {
            claims.insert("groups".into(), serde_json::json!(self.groups));
        }
        let now = now.as_secs();
        claims.insert("iat".into(), now.into());
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL).as_secs();
        claims.insert("exp".into(), now.saturating_add(ttl).into());
        for (name, value) in &self.extra {
            claims.insert(name.clone(), value.clone());
        }
        claims
    }
}

/// `NAME=VALUE` of `--claim`: VALUE as JSON when it parses (`3`, `true`,
/// `["a","b"]`, `"quoted"`), else as a string.
pub fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (name, raw) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: use NAME=VALUE (VALUE as JSON, or a plain string)"))?;
    if name.is_empty() {
        return Err(format!("`{text}`: the claim name is empty"));
    }
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    #[test]
    fn claim_options_set_defaults_and_claims_override_them() {
        let set = ClaimSet {
            issuer: Some("https://idp.example.com".into()),
            email: Some("a@example.com".into()),
            groups: vec!["x".into(), "y".into()],
            audiences: vec!["kf".into()],
            ..ClaimSet::default()
        };
        assert_eq!(set.conflicts(), Ok(()));
        let claims = set.claims(NOW);
        assert_eq!(claims["iss"], "https://idp.example.com");
        assert_eq!(claims["aud"], "kf");
        assert_eq!(claims["groups"], serde_json::json!(["x", "y"]));
        assert_eq!(claims["iat"], 1_700_000_000u64);
        assert_eq!(claims["exp"], 1_700_003_600u64);

        let expired = ClaimSet {
            issuer: Some("https://idp.example.com".into()),
            extra: vec![
                parse_claim("exp=1000").unwrap(),
                parse_claim("nbf=5").unwrap(),
            ],
            ..ClaimSet::default()
        };
        assert_eq!(expired.conflicts(), Ok(()));
        let claims = expired.claims(NOW);
        assert_eq!(claims["exp"], 1000);
        assert_eq!(claims["nbf"], 5);

        let issuer_by_claim = ClaimSet {
            extra: vec![parse_claim("iss=https://other.example.com").unwrap()],
            ..ClaimSet::default()
        };
        assert_eq!(issuer_by_claim.conflicts(), Ok(()));
        assert_eq!(
            issuer_by_claim.claims(NOW)["iss"],
            "https://other.example.com"
        );
    }

    #[test]
    fn a_claim_set_twice_is_refused_naming_both() {
        let both = |extra: &str, set: ClaimSet| {
            ClaimSet {
                extra: vec![parse_claim(extra).unwrap()],
                ..set
            }
            .conflicts()
            .unwrap_err()
        };
        let issuer = || ClaimSet {
            issuer: Some("i".into()),
            ..ClaimSet::default()
        };
        assert!(both("iss=x", issuer()).contains("--issuer"));
        let problem = both(
            "exp=1",
            ClaimSet {
                ttl: Some(DEFAULT_TTL),
                ..issuer()
            },
        );
        assert!(problem.contains("--ttl"), "{problem}");
        assert!(both(
            "email=x",
            ClaimSet {
                email: Some("e".into()),
                ..issuer()
            }
        )
        .contains("--email"));
        let twice = ClaimSet {
            extra: vec![parse_claim("a=1").unwrap(), parse_claim("a=2").unwrap()],
            ..issuer()
        };
        assert!(twice.conflicts().unwrap_err().contains("twice"));
        assert!(ClaimSet::default()
            .conflicts()
            .unwrap_err()
            .contains("--issuer is required"));
    }

    #[test]
    fn claim_values_are_json_or_text() {
        assert_eq!(parse_claim("n=3").unwrap().1, 3);
        assert_eq!(parse_claim("s=hello").unwrap().1, "hello");
        assert_eq!(
            parse_claim("l=[\"a\"]").unwrap().1,
            serde_json::json!(["a"])
        );
        assert_eq!(parse_claim("e=").unwrap().1, "");
        assert_eq!(parse_claim("u=a=b").unwrap(), ("u".into(), "a=b".into()));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=1").is_err());
    }

    #[test]
    fn key_formats_are_read_or_named() {
        let rsa = RS256KeyPair::generate(2048).unwrap();
        let pkcs8 = rsa.to_pem().unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(matches!(
            SigningKey::from_pem(&pkcs8),
            Ok(SigningKey::Rsa(_))
        ));
        // PKCS#1 is the RSAPrivateKey inside PKCS#8's privateKey octets.
        let der = rsa.to_der().unwrap();
        let info = p256::pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
        let pkcs1 = p256::pkcs8::der::pem::encode_string(
            "RSA PRIVATE KEY",
            Default::default(),
            info.private_key.as_bytes(),
        )
        .unwrap();
        let Ok(SigningKey::Rsa(read)) = SigningKey::from_pem(&pkcs1) else {
            panic!("PKCS#1 RSA")
        };
        assert_eq!(
            RS256KeyPair::from_pem(&read)
                .unwrap()
                .public_key()
                .to_der()
                .unwrap(),
            rsa.public_key().to_der().unwrap()
        );
        let ec = ES256KeyPair::generate().to_pem().unwrap();
        assert!(matches!(SigningKey::from_pem(&ec), Ok(SigningKey::P256(_))));
        let sec1 = p256::SecretKey::from_pkcs8_pem(&ec)
            .unwrap()
            .to_sec1_pem(Default::default())
            .unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        let SigningKey::P256(raw) = SigningKey::from_pem(&sec1).unwrap() else {
            panic!("SEC1 P-256")
        };
        assert_eq!(raw, ES256KeyPair::from_pem(&ec).unwrap().to_bytes());
        let es384 = ES384KeyPair::generate().to_pem().unwrap();
        assert!(matches!(
            SigningKey::from_pem(&es384),
            Ok(SigningKey::P384(_))
        ));
        let ed = Ed25519KeyPair::generate().to_pem();
        assert!(matches!(
            SigningKey::from_pem(&ed),
            Ok(SigningKey::Ed25519(_))
        ));

        for (pem, named) in [
            ("hello", "not a PEM key"),
            ("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n", "needs the private key"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n-----END ENCRYPTED PRIVATE KEY-----\n", "decrypt it first"),
            ("-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----\n", "SEC1 EC private key"),
            ("-----BEGIN PRIVATE KEY-----\nAA==\n-----END PRIVATE KEY-----\n", "PKCS#8 private key"),
            ("-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n", "PKCS#1 RSA"),
        ] {
            let problem = SigningKey::from_pem(pem).unwrap_err();
            assert!(problem.contains(named), "{pem}: {problem}");
        }
    }

    #[test]
    fn the_algorithm_defaults_from_the_key_and_must_fit_it() {
        let ec = SigningKey::from_pem(&ES256KeyPair::generate().to_pem().unwrap()).unwrap();
        assert_eq!(ec.algorithm(None), Ok(Algorithm::ES256));
        let problem = ec.algorithm(Some(Algorithm::RS256)).unwrap_err();
        assert!(
            problem.contains("does not fit the EC P-256 key (use ES256)"),
            "{problem}"
        );
        assert!(ec.sign(Algorithm::RS256, None, Map::new()).is_err());
    }
}
