//! The tokens the soak sends, minted before the run: per signing-key
//! generation, one RS256 and one ES256 token for each user, and a set of
//! tokens that must be refused (forged, tampered, expired, ...), each knowing
//! the identity the upstream must see when it is accepted.

use kfauth_testkit::forge;
use kfauth_testkit::idp::{now, Alg, Idp};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://soak.kfauth.local";
pub const AUDIENCE: &str = "kubeflow";

/// A token the issuer signed with a published key.
pub struct Valid {
    pub token: String,
    /// `kubeflow-userid` the upstream must receive.
    pub email: String,
    /// `kubeflow-groups` the upstream must receive.
    pub groups: String,
}

/// The ways a token is invalid; each must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invalid {
    /// Signed by another key under the issuer's `kid`.
    Forged,
    /// A valid token with another user's claims and the original signature.
    Tampered,
    Expired,
    WrongAudience,
    AlgNone,
    /// HS256 with the RSA public key as the secret (algorithm confusion).
    HmacWithPublicKey,
    UnknownIssuer,
    /// Signed by another key under a `kid` the issuer never published (each
    /// one makes kfauth consider a refetch).
    UnknownKid,
}

impl Invalid {
    pub const ALL: [Invalid; 8] = [
        Invalid::Forged,
        Invalid::Tampered,
        Invalid::Expired,
        Invalid::WrongAudience,
        Invalid::AlgNone,
        Invalid::HmacWithPublicKey,
        Invalid::UnknownIssuer,
        Invalid::UnknownKid,
    ];
}

/// One signing-key generation of the issuer.
pub struct Generation {
    pub idp: Idp,
    /// One RS256 and one ES256 token per user.
    pub valid: Vec<Valid>,
    /// Tokens aimed at this generation's keys that must be refused.
    pub invalid: Vec<(Invalid, String)>,
}

/// Users whose identity appears in the tokens.
pub fn email(user: usize) -> String {
    format!("user{user}@soak.example.com")
}

fn groups(user: usize) -> Vec<String> {
    vec![format!("team-{}", user % 17), "soak".to_string()]
}

/// Claims valid for `lifetime_seconds` from now.
fn claims(user: usize, lifetime_seconds: u64) -> Value {
    let issued = now();
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": format!("user-{user}"),
        "email": email(user),
        "groups": groups(user),
        "iat": issued,
        "exp": issued + lifetime_seconds,
    })
}

impl Generation {
    /// Keys `rsa-gN`/`ec-gN` and their tokens for `users` users, valid for
    /// `lifetime_seconds`.
    pub fn mint(number: usize, users: usize, lifetime_seconds: u64) -> Generation {
        let idp = Idp::generate(&format!("rsa-g{number}"), &format!("ec-g{number}"));
        let mut valid = Vec::with_capacity(users * 2);
        for user in 0..users {
            for alg in [Alg::RS256, Alg::ES256] {
                valid.push(Valid {
                    token: idp.sign(alg, &claims(user, lifetime_seconds)),
                    email: email(user),
                    groups: groups(user).join(","),
                });
            }
        }
        let mut invalid = Vec::new();
        // A few distinct tokens per kind, from different users.
        for user in (0..users).step_by((users / 8).max(1)) {
            let good = claims(user, lifetime_seconds);
            let ec_kid = idp.kid(Alg::ES256).to_string();
            let rsa_kid = idp.kid(Alg::RS256).to_string();
            let mut other = claims((user + 1) % users, lifetime_seconds);
            other["groups"] = json!(["admin"]);
            let mut expired = good.clone();
            expired["iat"] = json!(now() - 7200);
            expired["exp"] = json!(now() - 3600);
            let mut wrong_audience = good.clone();
            wrong_audience["aud"] = json!("another-audience");
            let mut unknown_issuer = good.clone();
            unknown_issuer["iss"] = json!("https://evil.example.com");
            for kind in Invalid::ALL {
                let token = match kind {
                    Invalid::Forged => forge::impostor_es256(&ec_kid, &good),
                    Invalid::Tampered => {
                        forge::replace_payload(&idp.sign(Alg::RS256, &good), &other)
                    }
                    Invalid::Expired => idp.sign(Alg::ES256, &expired),
                    Invalid::WrongAudience => idp.sign(Alg::ES256, &wrong_audience),
                    Invalid::AlgNone => forge::alg_none(&good),
                    Invalid::HmacWithPublicKey => {
                        forge::hs256(idp.rsa_public_pem().as_bytes(), &rsa_kid, &good)
                    }
                    Invalid::UnknownIssuer => idp.sign(Alg::ES256, &unknown_issuer),
                    Invalid::UnknownKid => {
                        forge::impostor_es256(&format!("made-up-{number}-{user}"), &good)
                    }
                };
                invalid.push((kind, token));
            }
        }
        Generation {
            idp,
            valid,
            invalid,
        }
    }
}

/// A JWKS document publishing the keys of `generations`.
pub fn jwks(generations: &[&Generation]) -> String {
    let keys: Vec<Value> = generations
        .iter()
        .flat_map(|generation| {
            [
                generation.idp.jwk(Alg::RS256),
                generation.idp.jwk(Alg::ES256),
            ]
        })
        .collect();
    json!({ "keys": keys }).to_string()
}
