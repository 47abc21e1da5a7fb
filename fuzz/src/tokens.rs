//! Genuinely signed seed tokens and the mutations the `token_verify` target
//! applies to them: JSON edits of the header and payload, byte edits of any
//! segment or of the whole text, segments swapped between seeds, and re-signing
//! with any key (configured or not) so that edited claims reach the claim checks.

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine;
use kfauth::jwks::Algorithm;
use serde_json::{json, Map, Value};

use crate::keys::{self, KeyName, AUDIENCE, ISSUER, NOW_SECS, OTHER_ISSUER};

/// Signing input the harness signed, with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub input: String,
    /// `None`: HMAC with the `oct` secret.
    pub key: Option<KeyName>,
    pub algorithm: Option<Algorithm>,
}

pub struct Seed {
    pub name: &'static str,
    pub token: String,
    pub signed: Option<Signed>,
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}

pub fn standard_claims() -> Value {
    json!({
        "iss": ISSUER,
        "sub": "Cg1hbGljZQ",
        "aud": AUDIENCE,
        "email": "alice@example.com",
        "groups": ["team-a"],
        "iat": NOW_SECS - 10,
        "exp": NOW_SECS + 3600,
    })
}

fn header(alg: &str, kid: Option<&str>) -> Value {
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = kid.into();
    }
    header
}

fn signed_token(
    header: &Value,
    claims: &Value,
    key: KeyName,
    algorithm: Algorithm,
) -> (String, Signed) {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = keys::sign(key, algorithm, input.as_bytes()).unwrap();
    let token = format!("{input}.{}", b64(&signature));
    (
        token,
        Signed {
            input,
            key: Some(key),
            algorithm: Some(algorithm),
        },
    )
}

/// The seeds, signed once per process (every signature is deterministic).
pub fn seeds() -> &'static [Seed] {
    static SEEDS: OnceLock<Vec<Seed>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        use Algorithm::*;
        use KeyName::*;
        let standard = standard_claims();
        let mut expired = standard_claims();
        expired["exp"] = (NOW_SECS - 3600).into();
        let mut audience_list = standard_claims();
        audience_list["aud"] = json!(["x", AUDIENCE]);
        let mut other_issuer = standard_claims();
        other_issuer["iss"] = OTHER_ISSUER.into();
        other_issuer.as_object_mut().unwrap().remove("aud");
        let signed: Vec<(&str, Option<&str>, KeyName, Algorithm, &Value)> = vec![
            ("rs256-rsa-a", Some("rsa-a"), RsaA, RS256, &standard),
            ("ps256-rsa-b", Some("rsa-b"), RsaB, PS256, &standard),
            ("rs512-no-kid", None, RsaB, RS512, &standard),
            ("es256", Some("ec-256"), P256, ES256, &standard),
            ("es384", Some("ec-384"), P384, ES384, &standard),
            ("eddsa-no-kid", None, Ed25519, EdDSA, &standard),
            (
                "ps256-on-rs256-only-key",
                Some("rsa-a"),
                RsaA,
                PS256,
                &standard,
            ),
            ("other-issuer", Some("rsa-b"), RsaB, RS384, &other_issuer),
            (
                "unconfigured-key",
                Some("rsa-a"),
                RsaUnconfigured,
                RS256,
                &standard,
            ),
            (
                "encryption-key",
                Some("rsa-enc"),
                RsaUnconfigured,
                RS256,
                &standard,
            ),
            ("expired", Some("rsa-a"), RsaA, RS256, &expired),
            ("audience-list", Some("ec-256"), P256, ES256, &audience_list),
            ("es512", Some("ec-521"), P521, ES512, &standard),
            ("es512-no-kid", None, P521, ES512, &standard),
            // A kid no key carries: the keys without kid are tried (Ed25519).
            (
                "eddsa-unlisted-kid",
                Some("unlisted"),
                Ed25519,
                EdDSA,
                &standard,
            ),
        ];
        let mut seeds: Vec<Seed> = signed
            .into_iter()
            .map(|(name, kid, key, algorithm, claims)| {
                let (token, signed) =
                    signed_token(&header(algorithm.name(), kid), claims, key, algorithm);
                Seed {
                    name,
                    token,
                    signed: Some(signed),
                }
            })
            .collect();
        let hs_input = format!(
            "{}.{}",
            b64(header("HS256", Some("hs")).to_string().as_bytes()),
            b64(standard.to_string().as_bytes())
        );
        seeds.push(Seed {
            name: "hs256-oct-key",
            token: format!("{hs_input}.{}", b64(&keys::hmac(hs_input.as_bytes()))),
            signed: Some(Signed {
                input: hs_input,
                key: None,
                algorithm: None,
            }),
        });
        seeds.push(Seed {
            name: "alg-none",
            token: format!(
                "{}.{}.",
                b64(header("none", Some("rsa-a")).to_string().as_bytes()),
                b64(standard.to_string().as_bytes())
            ),
            signed: None,
        });
        seeds
    })
}

/// Header and claim names the edits pick from.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    Alg,
    Kid,
    Typ,
    Crit,
    Jku,
    Jwk,
    X5u,
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Email,
    Other(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Name::Alg => "alg",
            Name::Kid => "kid",
            Name::Typ => "typ",
            Name::Crit => "crit",
            Name::Jku => "jku",
            Name::Jwk => "jwk",
            Name::X5u => "x5u",
            Name::Iss => "iss",
            Name::Sub => "sub",
            Name::Aud => "aud",
            Name::Exp => "exp",
            Name::Nbf => "nbf",
            Name::Iat => "iat",
            Name::Email => "email",
            Name::Other(name) => name,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Text {
    Rs256,
    Ps256,
    Es256,
    Es384,
    EdDsa,
    Ed25519,
    None,
    NoneUpper,
    Hs256,
    KidRsaA,
    KidRsaB,
    KidEc256,
    KidEc384,
    KidHs,
    KidEnc,
    Jwt,
    Issuer,
    OtherIssuer,
    IssuerSlash,
    IssuerUpper,
    Audience,
    AudiencePrefix,
    Empty,
    Free(String),
}

impl Text {
    fn value(&self) -> String {
        match self {
            Text::Rs256 => "RS256",
            Text::Ps256 => "PS256",
            Text::Es256 => "ES256",
            Text::Es384 => "ES384",
            Text::EdDsa => "EdDSA",
            Text::Ed25519 => "Ed25519",
            Text::None => "none",
            Text::NoneUpper => "NONE",
            Text::Hs256 => "HS256",
            Text::KidRsaA => "rsa-a",
            Text::KidRsaB => "rsa-b",
            Text::KidEc256 => "ec-256",
            Text::KidEc384 => "ec-384",
            Text::KidHs => "hs",
            Text::KidEnc => "rsa-enc",
            Text::Jwt => "JWT",
            Text::Issuer => ISSUER,
            Text::OtherIssuer => OTHER_ISSUER,
            Text::IssuerSlash => "https://dex.example.test/dex/",
            Text::IssuerUpper => "https://DEX.example.test/dex",
            Text::Audience => AUDIENCE,
            Text::AudiencePrefix => "kube",
            Text::Empty => "",
            Text::Free(text) => text,
        }
        .to_string()
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// `NOW_SECS` plus this many seconds.
    Time(i32),
    /// `NOW_SECS` plus this many seconds, plus a fraction.
    FractionalTime(i32, u8),
    Text(Text),
    Texts(Vec<Text>),
    Object(Vec<(String, i64)>),
    /// Arrays nested this deep.
    Nested(u8),
}

impl Val {
    fn value(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(value) => (*value).into(),
            Val::Int(value) => (*value).into(),
            Val::Float(value) => json!(value),
            Val::Time(offset) => NOW_SECS.saturating_add_signed(i64::from(*offset)).into(),
            Val::FractionalTime(offset, fraction) => json!(
                NOW_SECS.saturating_add_signed(i64::from(*offset)) as f64
                    + f64::from(*fraction) / 256.0
            ),
            Val::Text(text) => text.value().into(),
            Val::Texts(texts) => texts.iter().map(Text::value).collect(),
            Val::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (key.clone(), (*value).into()))
                    .collect(),
            ),
            Val::Nested(depth) => {
                let mut value = json!(1);
                for _ in 0..*depth {
                    value = json!([value]);
                }
                value
            }
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum ByteEdit {
    Flip { at: u16, bit: u8 },
    Set { at: u16, byte: u8 },
    Insert { at: u16, bytes: Vec<u8> },
    Delete { at: u16, len: u8 },
    Truncate(u16),
    Append(Vec<u8>),
}

impl ByteEdit {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let len = bytes.len();
        let at = |at: &u16| {
            if len == 0 {
                0
            } else {
                usize::from(*at) % (len + 1)
            }
        };
        match self {
            ByteEdit::Flip { at: index, bit } => {
                if len > 0 {
                    bytes[usize::from(*index) % len] ^= 1 << (bit % 8);
                }
            }
            ByteEdit::Set { at: index, byte } => {
                if len > 0 {
                    bytes[usize::from(*index) % len] = *byte;
                }
            }
            ByteEdit::Insert {
                at: index,
                bytes: inserted,
            } => {
                let index = at(index);
                bytes.splice(index..index, inserted.iter().copied());
            }
            ByteEdit::Delete {
                at: index,
                len: count,
            } => {
                let index = at(index);
                let end = (index + usize::from(*count)).min(len);
                bytes.drain(index..end);
            }
            ByteEdit::Truncate(index) => bytes.truncate(at(index)),
            ByteEdit::Append(more) => bytes.extend_from_slice(more),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    ES512,
}

impl Alg {
    pub fn algorithm(self) -> Algorithm {
        match self {
            Alg::RS256 => Algorithm::RS256,
            Alg::RS384 => Algorithm::RS384,
            Alg::RS512 => Algorithm::RS512,
            Alg::PS256 => Algorithm::PS256,
            Alg::PS384 => Algorithm::PS384,
            Alg::PS512 => Algorithm::PS512,
            Alg::ES256 => Algorithm::ES256,
            Alg::ES384 => Algorithm::ES384,
            Alg::EdDSA => Algorithm::EdDSA,
            Alg::ES512 => Algorithm::ES512,
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    SetHeader(Name, Val),
    RemoveHeader(Name),
    SetClaim(Name, Val),
    RemoveClaim(Name),
    HeaderBytes(ByteEdit),
    PayloadBytes(ByteEdit),
    SignatureBytes(ByteEdit),
    HeaderFrom(u8),
    PayloadFrom(u8),
    SignatureFrom(u8),
    /// Sign the current header and payload (as they are) with a key.
    Sign(KeyName, Alg),
    /// HS256 with the `oct` JWK's secret.
    SignHmac,
    /// ECDSA signature as r=0, s=0 (CVE-2022-21449), of the right length.
    ZeroSignature(u8),
    /// Edits of the final text (encoding games); applied after everything else.
    Text(ByteEdit),
}

/// One fuzz case: a seed, edits, and the clock.
#[derive(Arbitrary, Debug, Clone)]
pub struct Case {
    pub seed: u8,
    pub ops: Vec<Op>,
    /// Seconds from `NOW_SECS`.
    pub clock: i32,
}

/// The built token and what the harness signed while building it.
pub struct Built {
    pub token: String,
    pub signed: Vec<Signed>,
    pub now_secs: u64,
}

struct Parts {
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn parts_of(token: &str) -> Parts {
    let mut segments = token.split('.');
    let mut next = || segments.next().and_then(unb64).unwrap_or_default();
    Parts {
        header: next(),
        payload: next(),
        signature: next(),
    }
}

fn edit_json(bytes: &mut Vec<u8>, edit: impl FnOnce(&mut Map<String, Value>)) {
    if let Ok(mut object) = serde_json::from_slice::<Map<String, Value>>(bytes) {
        edit(&mut object);
        *bytes = serde_json::to_vec(&object).unwrap();
    }
}

impl Case {
    pub fn build(&self) -> Built {
        let seeds = seeds();
        let pick = |index: u8| &seeds[usize::from(index) % seeds.len()];
        let mut parts = parts_of(&pick(self.seed).token);
        let mut signed = Vec::new();
        let mut text_edits = Vec::new();
        let input = |parts: &Parts| format!("{}.{}", b64(&parts.header), b64(&parts.payload));
        for op in self.ops.iter().take(12) {
            match op {
                Op::SetHeader(name, value) => edit_json(&mut parts.header, |map| {
                    map.insert(name.as_str().to_string(), value.value());
                }),
                Op::RemoveHeader(name) => edit_json(&mut parts.header, |map| {
                    map.remove(name.as_str());
                }),
                Op::SetClaim(name, value) => edit_json(&mut parts.payload, |map| {
                    map.insert(name.as_str().to_string(), value.value());
                }),
                Op::RemoveClaim(name) => edit_json(&mut parts.payload, |map| {
                    map.remove(name.as_str());
                }),
                Op::HeaderBytes(edit) => edit.apply(&mut parts.header),
                Op::PayloadBytes(edit) => edit.apply(&mut parts.payload),
                Op::SignatureBytes(edit) => edit.apply(&mut parts.signature),
                Op::HeaderFrom(index) => parts.header = parts_of(&pick(*index).token).header,
                Op::PayloadFrom(index) => parts.payload = parts_of(&pick(*index).token).payload,
                Op::SignatureFrom(index) => {
                    parts.signature = parts_of(&pick(*index).token).signature
                }
                Op::Sign(key, alg) => {
                    let input = input(&parts);
                    if let Some(signature) = keys::sign(*key, alg.algorithm(), input.as_bytes()) {
                        parts.signature = signature;
                        signed.push(Signed {
                            input,
                            key: Some(*key),
                            algorithm: Some(alg.algorithm()),
                        });
                    }
                }
                Op::SignHmac => {
                    let input = input(&parts);
                    parts.signature = keys::hmac(input.as_bytes());
                    signed.push(Signed {
                        input,
                        key: None,
                        algorithm: None,
                    });
                }
                Op::ZeroSignature(size) => {
                    parts.signature = vec![0; [64, 96, 132, 256][usize::from(*size) % 4]]
                }
                Op::Text(edit) => text_edits.push(edit),
            }
        }
        let mut token = format!("{}.{}", input(&parts), b64(&parts.signature)).into_bytes();
        for edit in text_edits {
            edit.apply(&mut token);
        }
        Built {
            token: String::from_utf8_lossy(&token).into_owned(),
            signed,
            now_secs: NOW_SECS.saturating_add_signed(i64::from(self.clock)),
        }
    }
}
