//! One request, in order: drop client-sent identity headers; skip paths and
//! CORS preflights; find the token; decode it; choose the rule by `iss`; get the keys; verify; map the
//! claims to headers; remove the token unless it is forwarded; remove the
//! session cookies; the gRPC cookie diet; the header budget; authorize.

use std::rc::Rc;
use std::time::Duration;

use crate::access::Access;
use crate::authz::subject_access_review::SubjectAccessReviewCache;
use crate::authz::token_review::{TokenReviewCache, TokenStatus};
use crate::authz::{authorize, AuthzStep};
use crate::cause::Cause;
use crate::config::Config;
use crate::cookie_diet;
use crate::header_budget;
use crate::identity::{strip_client_identity, verified_identity_headers};
use crate::keystore::{KeyState, KeyStore};
use crate::outcome::{Denial, HeaderEdits, Identity, Outcome, Reason};
use crate::request::RequestView;
use crate::session;
use crate::token::{find_token, remove_token};
use crate::verified_token_cache::{VerifiedToken, VerifiedTokenCache};
use crate::verify::{decode, verify};

/// What the core knows beyond the configuration: key sets and cached answers.
pub struct Caches<'a> {
    pub keys: &'a KeyStore,
    pub verified_tokens: &'a VerifiedTokenCache,
    pub subject_access_reviews: &'a SubjectAccessReviewCache,
    pub token_reviews: &'a TokenReviewCache,
}

/// What a decision notes on its way, besides its outcome.
#[derive(Debug, Default)]
pub struct Notes {
    /// What the access log may say of the request (who, and which review).
    pub access: Access,
    /// Which cached review answers it used (the broker counts the hits).
    pub cached: Cached,
}

/// The cached answers a decision used.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub subject_access_review: bool,
    pub token_review: bool,
}

/// Whether a request may be held for keys that are not there yet: once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWait {
    /// It may wait for a fetch.
    May,
    /// It already waited: it is answered now rather than held again.
    Spent,
}

/// Decides what happens to `request` at `now` (host clock, since the epoch).
pub fn decide(
    config: &Config,
    caches: &Caches,
    request: &RequestView,
    now: Duration,
    key_wait: KeyWait,
) -> Outcome {
    decide_noting(
        config,
        caches,
        request,
        now,
        key_wait,
        &mut Notes::default(),
    )
}

/// [`decide`], noting what the access log may say of the request (the
/// broker adds the refusal) and which cached answers it used.
pub fn decide_noting(
    config: &Config,
    caches: &Caches,
    request: &RequestView,
    now: Duration,
    key_wait: KeyWait,
    notes: &mut Notes,
) -> Outcome {
    let mut edits = strip_client_identity(config, request);

    // A CORS preflight carries no credentials (the Fetch standard sends none),
    // so it passes unauthenticated and unauthorized, as Envoy's `jwt_authn`
    // does with `bypass_cors_preflight` (Istio sets it): a token it carries
    // anyway is neither verified nor removed, as on a skipped path.
    let preflight = config.bypass_cors_preflight && request.is_cors_preflight();
    let skipped_path = || {
        let path = request.canonical_path();
        config
            .skip_paths
            .iter()
            .any(|pattern| pattern.is_match(path))
    };
    if preflight || skipped_path() {
        notes.access = Access::skipped();
        // Such a request may still reach a backend a user controls: the
        // session stays here too.
        if let Err(denial) = finish_edits(config, request, &mut edits) {
            return Outcome::Deny(denial);
        }
        return Outcome::Allow {
            edits,
            identity: None,
            authorized: false,
        };
    }

    let identity = match authenticate(config, caches, request, now, key_wait, &mut edits, notes) {
        Ok(identity) => identity,
        Err(outcome) => return *outcome,
    };
    if identity.is_none() && config.require_jwt {
        return Outcome::Deny(Denial::because(Cause::NoToken, false));
    }
    // `presence: REQUIRED` (Istio): that rule's token must be there, even
    // when another rule's token is valid.
    if config
        .required_rule
        .is_some_and(|required| identity.as_ref().map(|found| found.rule) != Some(required))
    {
        return Outcome::Deny(Denial::because(Cause::RequiredRuleTokenAbsent, false));
    }
    // After authentication, so that a token carried in a cookie was found.
    // Before authorization: a request refused here costs no review.
    if let Err(denial) = finish_edits(config, request, &mut edits) {
        return Outcome::Deny(denial);
    }

    let mut authorized = false;
    if let Some(authorization) = &config.authorization {
        match authorize(
            authorization,
            &config.rules,
            request,
            identity.as_ref(),
            caches.subject_access_reviews,
            now,
            &mut notes.access,
        ) {
            AuthzStep::Allow => authorized = true,
            AuthzStep::NotGuarded => {}
            AuthzStep::Deny(denial) => return Outcome::Deny(denial),
            AuthzStep::Cached(answer) => {
                notes.cached.subject_access_review = true;
                match answer {
                    None => authorized = true,
                    Some(denial) => return Outcome::Deny(denial),
                }
            }
            AuthzStep::SubjectAccessReview { key, body } => {
                return Outcome::SubjectAccessReview { edits, key, body }
            }
        }
    }
    Outcome::Allow {
        edits,
        identity,
        authorized,
    }
}

/// The last edits of a request that goes upstream: the session cookies
/// removed, the gRPC cookie diet, then the header budget on what is left.
fn finish_edits(
    config: &Config,
    request: &RequestView,
    edits: &mut HeaderEdits,
) -> Result<(), Denial> {
    session::apply(&config.session, request, edits);
    if let Some(grpc) = &config.grpc {
        cookie_diet::apply(grpc, request, edits);
    }
    match header_budget::check(&config.header_budgets, request, edits) {
        None => Ok(()),
        Some(oversized) => Err(Denial {
            reason: Reason::HeaderTooLarge,
            cause: None,
            token_sent: false,
            detail: Some(oversized.detail()),
        }),
    }
}

/// Finds and verifies the token. `Ok(None)`: no token; `Err`: the outcome to
/// return at once (a refusal, or wait for keys).
fn authenticate(
    config: &Config,
    caches: &Caches,
    request: &RequestView,
    now: Duration,
    key_wait: KeyWait,
    edits: &mut HeaderEdits,
    notes: &mut Notes,
) -> Result<Option<Identity>, Box<Outcome>> {
    let deny = |cause| Box::new(Outcome::Deny(Denial::because(cause, true)));
    let Some(found) = find_token(request, &config.token_locations).map_err(deny)? else {
        return Ok(None);
    };
    let keys = caches.keys;
    let digest = caches.verified_tokens.digest(&found.value);
    let remembered = caches
        .verified_tokens
        .get(digest, now, config.clock_skew, |rule| keys.generation(rule))
        .filter(|hit| matches!(keys.state(config, hit.rule, now), KeyState::Ready(_)));
    let verified = match remembered {
        Some(hit) => hit,
        None => {
            let verified = Rc::new(verify_token(config, keys, &found.value, now, key_wait)?);
            caches
                .verified_tokens
                .remember(digest, Rc::clone(&verified), now, config.clock_skew);
            verified
        }
    };
    let rule_index = verified.rule;
    let Some(rule) = config.rules.get(rule_index) else {
        return Err(deny(Cause::IssuerNotConfigured));
    };

    // Signature good; a service-account token may still have been revoked.
    let cached = rule
        .token_review
        .as_ref()
        .map(|_| caches.token_reviews.get(&digest, now));
    notes.cached.token_review = matches!(cached, Some(Some(_)));
    let reviewed = match cached {
        None | Some(Some(TokenStatus::Unreviewed)) => None,
        Some(Some(TokenStatus::Authenticated(subject))) => Some(subject.clone()),
        Some(Some(TokenStatus::Rejected(why))) => {
            return Err(Box::new(Outcome::Deny(Denial {
                reason: Reason::TokenRevoked,
                cause: None,
                token_sent: true,
                detail: Some(why.clone()),
            })))
        }
        Some(None) => match config.authorization.as_ref().and_then(|authz| {
            let env = authz.apiserver.missing_credential()?;
            Some(crate::authz::unavailable(authz, env))
        }) {
            // No credential to send a review with: `failureMode` answers.
            Some(Some(denial)) => return Err(Box::new(Outcome::Deny(denial))),
            Some(None) => None,
            None => {
                return Err(Box::new(Outcome::TokenReview {
                    rule: rule_index,
                    token: found.value,
                }))
            }
        },
    };

    // The user header is the rule's first mapping (as for authorization).
    let user = rule
        .claim_headers
        .first()
        .and_then(|mapping| {
            verified
                .headers
                .iter()
                .find(|(name, _)| *name == mapping.header)
        })
        .map(|(_, value)| value.as_str())
        .or(reviewed.as_ref().map(|subject| subject.user.as_str()));
    notes.access.authenticated(&rule.issuer, user);
    edits.set.extend(verified.headers.iter().cloned());
    if !rule.forward_original_token {
        remove_token(request, &found, edits);
    }
    Ok(Some(Identity {
        rule: rule_index,
        claims: Rc::clone(&verified.claims),
        reviewed,
    }))
}

/// Decodes the token, chooses its rule by `iss` and checks it with the rule's keys.
fn verify_token(
    config: &Config,
    keys: &KeyStore,
    token: &str,
    now: Duration,
    key_wait: KeyWait,
) -> Result<VerifiedToken, Box<Outcome>> {
    let deny = |cause| Box::new(Outcome::Deny(Denial::because(cause, true)));
    let unverified = decode(token).map_err(deny)?;
    let Some((rule_index, rule)) = unverified
        .issuer()
        .and_then(|issuer| config.rule_by_issuer.get(issuer))
        .and_then(|&index| Some((index, config.rules.get(index)?)))
    else {
        return Err(deny(Cause::IssuerNotConfigured));
    };
    let key_set = match keys.state(config, rule_index, now) {
        KeyState::Ready(key_set) => key_set,
        KeyState::Pending if key_wait == KeyWait::May => {
            return Err(Box::new(Outcome::FetchKeys(rule_index)))
        }
        KeyState::Pending | KeyState::Unavailable => return Err(deny(Cause::KeysNotFetched)),
    };
    match verify(token, &unverified, rule, key_set, now, config.clock_skew) {
        Ok(()) => {}
        // Keys rotate: a `kid` we do not know may be in a fresh fetch.
        Err(Cause::KidUnknown)
            if key_wait == KeyWait::May && keys.may_refetch(config, rule_index, now) =>
        {
            return Err(Box::new(Outcome::FetchKeys(rule_index)))
        }
        Err(cause) => return Err(deny(cause)),
    }
    // Headers are computed (and their values checked) before the token is
    // remembered: a token whose claims cannot become headers is never cached.
    let headers = verified_identity_headers(rule, &unverified.claims, &unverified.payload_segment)
        .map_err(deny)?;
    let time = |name| {
        unverified
            .claims
            .get(name)
            .and_then(serde_json::Value::as_f64)
    };
    // `verify` refuses a token without `exp`; no `exp` here would mean expired.
    let expires = time("exp").unwrap_or(f64::NEG_INFINITY);
    let not_before = time("nbf");
    Ok(VerifiedToken {
        rule: rule_index,
        key_generation: keys.generation(rule_index),
        claims: if config.authorization.is_some() {
            Rc::new(unverified.claims)
        } else {
            Rc::default()
        },
        headers,
        expires,
        not_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::shared::MemorySharedData;
    use crate::testutil::*;
    use serde_json::{json, Value};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn config(value: Value) -> Config {
        Config::parse(value.to_string().as_bytes()).unwrap()
    }

    fn with_claim_headers(mut value: Value) -> Value {
        value["jwtRules"][0]["outputClaimToHeaders"] = json!([
            {"header": "kubeflow-userid", "claim": "email"},
            {"header": "kubeflow-groups", "claim": "groups"},
        ]);
        value
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> RequestView {
        let mut pairs = vec![
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), path.to_string()),
            (":authority".to_string(), "kubeflow.example.com".to_string()),
        ];
        pairs.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        RequestView::from_pairs(pairs)
    }

    fn run(config: &Config, request: &RequestView) -> Outcome {
        let keys = KeyStore::new(config, 1);
        decide(config, &caches(&keys), request, NOW, KeyWait::May)
    }

    fn caches(keys: &KeyStore) -> Caches<'_> {
        Caches {
            keys,
            verified_tokens: Box::leak(Box::new(VerifiedTokenCache::new(0))),
            subject_access_reviews: Box::leak(Box::new(SubjectAccessReviewCache::new(0))),
            token_reviews: Box::leak(Box::new(TokenReviewCache::new(0))),
        }
    }

    /// A key store after one fetch with this answer.
    fn fetched(config: &Config, answer: Result<&[u8], String>) -> KeyStore {
        let mut shared = MemorySharedData::default();
        let mut keys = KeyStore::new(config, 1);
        keys.begin_fetch(config, 0, &mut shared, NOW).unwrap();
        keys.fetch_answered(config, 0, answer, &mut shared, NOW);
        keys
    }

    fn bearer(token: &str) -> String {
        format!("Bearer {token}")
    }

    #[test]
    fn a_valid_token_maps_claims_and_loses_the_token() {
        let config = config(with_claim_headers(all_keys_config()));
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let outcome = run(
            &config,
            &request(
                "/pipeline",
                &[
                    ("authorization", &bearer(&token)),
                    ("kubeflow-userid", "mallory"),
                ],
            ),
        );
        assert_eq!(
            outcome,
            Outcome::Allow {
                edits: HeaderEdits {
                    remove: vec!["kubeflow-userid".into(), "authorization".into()],
                    set: vec![
                        ("kubeflow-userid".into(), "alice@example.com".into()),
                        ("kubeflow-groups".into(), "team-a,team-b".into()),
                    ],
                    path: None,
                    stripped_cookie_bytes: 0,
                    session_cookie_bytes: 0,
                },
                authorized: false,
                identity: Some(Identity {
                    reviewed: None,
                    rule: 0,
                    // Kept only for an `authorization` block, which this config has not.
                    claims: Rc::default(),
                }),
            }
        );
    }

    #[test]
    fn the_access_record_names_the_verified_user_or_says_skipped() {
        use crate::access::Decision;
        let mut value = with_claim_headers(all_keys_config());
        value["jwtRules"][0]["outputClaimToHeaders"][0]["prefix"] = "dex:".into();
        value["skipPaths"] = json!(["^/dex/"]);
        let config = config(value);
        let keys = KeyStore::new(&config, 1);
        let note = |request: &RequestView| {
            let mut notes = Notes::default();
            decide_noting(
                &config,
                &caches(&keys),
                request,
                NOW,
                KeyWait::May,
                &mut notes,
            );
            notes.access
        };
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let verified = note(&request("/", &[("authorization", &bearer(&token))]));
        assert_eq!(verified.decision, Decision::Allowed);
        assert_eq!(verified.user.as_deref(), Some("dex:alice@example.com"));
        assert_eq!(verified.issuer.as_deref(), Some(DEX));
        let skipped = note(&request("/dex/auth", &[("authorization", &bearer(&token))]));
        assert_eq!(skipped, Access::skipped());
        assert_eq!(note(&request("/", &[])), Access::default());
        // A refused token names nobody: the refusal is the broker's to add.
        let forged = format!("{}x", token);
        assert_eq!(
            note(&request("/", &[("authorization", &bearer(&forged))])),
            Access::default()
        );
    }

    #[test]
    fn forward_original_token_keeps_it() {
        let mut value = with_claim_headers(all_keys_config());
        value["jwtRules"][0]["forwardOriginalToken"] = true.into();
        let config = config(value);
        let token = sign("ES256", Some("ec-1"), &standard_claims());
        let Outcome::Allow { edits, .. } = run(
            &config,
            &request("/", &[("authorization", &bearer(&token))]),
        ) else {
            panic!("denied")
        };
        assert!(!edits.remove.contains(&"authorization".to_string()));
    }

    #[test]
    fn no_token_passes_unless_required_and_identity_is_stripped_anyway() {
        let open = config(with_claim_headers(all_keys_config()));
        let Outcome::Allow { edits, .. } =
            run(&open, &request("/", &[("kubeflow-userid", "mallory")]))
        else {
            panic!("denied")
        };
        assert_eq!(edits.remove, ["kubeflow-userid"]);
        assert!(edits.set.is_empty());

        let mut value = with_claim_headers(all_keys_config());
        value["requireJwt"] = true.into();
        value["skipPaths"] = json!(["^/dex/"]);
        let closed = config(value);
        assert_eq!(
            run(&closed, &request("/notebooks", &[])),
            Outcome::Deny(Denial::because(Cause::NoToken, false))
        );
        let Outcome::Allow { edits, .. } = run(
            &closed,
            &request("/dex/auth?x=/y", &[("kubeflow-userid", "mallory")]),
        ) else {
            panic!("skip path denied")
        };
        assert_eq!(edits.remove, ["kubeflow-userid"]);
        // The query string is not part of the matched path.
        assert!(matches!(
            run(&closed, &request("/x?r=/dex/", &[])),
            Outcome::Deny(_)
        ));
    }

    fn preflight(path: &str, headers: &[(&str, &str)]) -> RequestView {
        let mut view = request(
            path,
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "POST"),
            ],
        );
        view.method = "OPTIONS".into();
        for (name, value) in headers {
            view.headers.push(name, value);
        }
        view
    }

    #[test]
    fn a_cors_preflight_passes_without_authentication_or_authorization() {
        let mut value = with_claim_headers(all_keys_config());
        value["requireJwt"] = true.into();
        value["grpc"] = json!({"cookiePaths": ["^/ml_metadata"]});
        value["authorization"] = json!({"rules": [{"match": {"paths": ["^/ns/(?P<ns>[^/]+)"]},
            "resourceAttributes": {"namespace": "{path.ns}", "resource": "runs"}}]});
        let config =
            Config::parse_with_env(value.to_string().as_bytes(), &|_| Some("credential".into()))
                .unwrap();
        assert!(config.bypass_cors_preflight, "on by default");
        let spoofed = [("kubeflow-userid", "root"), ("kubeflow_groups", "admins")];
        // Guarded by an authorization rule, with a token required: passes,
        // no review, the spoofed identity still removed.
        assert_eq!(
            run(&config, &preflight("/ns/team-a/runs", &spoofed)),
            Outcome::Allow {
                edits: HeaderEdits {
                    remove: vec!["kubeflow-userid".into(), "kubeflow_groups".into()],
                    ..HeaderEdits::default()
                },
                identity: None,
                authorized: false,
            }
        );
        // A token it carries anyway is neither verified nor removed (Envoy's
        // jwt_authn returns before looking for one).
        let Outcome::Allow {
            edits, identity, ..
        } = run(
            &config,
            &preflight("/ns/team-a/runs", &[("authorization", "Bearer garbage")]),
        )
        else {
            panic!("a preflight with a bad token was refused")
        };
        assert_eq!((edits, identity), (HeaderEdits::default(), None));
        // The gRPC cookie diet still applies.
        let Outcome::Allow { edits, .. } = run(
            &config,
            &preflight(
                "/ml_metadata.MetadataStoreService/GetArtifacts",
                &[("content-type", "application/grpc"), ("cookie", "a=1")],
            ),
        ) else {
            panic!("denied")
        };
        assert_eq!(edits.remove, ["cookie"]);

        // Not a preflight: the method, or either header, missing.
        let missing = Outcome::Deny(Denial::because(Cause::NoToken, false));
        let mut get = preflight("/ns/team-a/runs", &[]);
        get.method = "GET".into();
        let mut no_origin = preflight("/ns/team-a/runs", &[]);
        no_origin.headers.retain(|name, _| name != "origin");
        let mut no_method = preflight("/ns/team-a/runs", &[]);
        no_method
            .headers
            .retain(|name, _| name != "access-control-request-method");
        for view in [get, no_origin, no_method] {
            assert_eq!(run(&config, &view), missing, "{view:?}");
        }

        // Turned off: a preflight is a request like any other.
        value["bypassCorsPreflight"] = false.into();
        let strict =
            Config::parse_with_env(value.to_string().as_bytes(), &|_| Some("credential".into()))
                .unwrap();
        assert_eq!(run(&strict, &preflight("/ns/team-a/runs", &[])), missing);
    }

    #[test]
    fn a_bad_token_is_refused_even_when_tokens_are_optional() {
        let config = config(all_keys_config());
        let mut claims = standard_claims();
        claims["exp"] = (NOW_SECS - 3600).into();
        let token = sign("RS256", Some("rsa-1"), &claims);
        assert_eq!(
            run(
                &config,
                &request("/", &[("authorization", &bearer(&token))])
            ),
            Outcome::Deny(Denial::because(Cause::Expired, true))
        );
        assert_eq!(
            run(
                &config,
                &request("/", &[("authorization", "Bearer garbage")])
            ),
            Outcome::Deny(Denial::because(Cause::NotThreeSegments, true))
        );
    }

    #[test]
    fn a_required_rule_needs_its_own_token_and_space_delimited_claims_are_lists() {
        const K8S: &str = "https://kubernetes.default.svc.cluster.local";
        let jwks = json!({"keys": [rsa_jwk("rsa-1", None)]}).to_string();
        let config = config(json!({"jwtRules": [
            {"issuer": DEX, "jwks": jwks, "presence": "REQUIRED",
             "spaceDelimitedClaims": ["scope", "roles"],
             "outputClaimToHeaders": [
                {"header": "x-scope", "claim": "scope"},
                {"header": "x-roles", "claim": "roles"},
                {"header": "x-words", "claim": "words"}]},
            {"issuer": K8S, "jwks": jwks, "presence": "OPTIONAL"},
        ], "skipPaths": ["^/healthz$"]}));
        let missing = Outcome::Deny(Denial::because(Cause::RequiredRuleTokenAbsent, false));
        // No token: refused although requireJwt is false.
        assert_eq!(run(&config, &request("/", &[])), missing);
        // skipPaths still skips.
        assert!(matches!(
            run(&config, &request("/healthz", &[])),
            Outcome::Allow { .. }
        ));
        // A valid token of the other rule does not stand in for it.
        let mut other = standard_claims();
        other["iss"] = K8S.into();
        let token = sign("RS256", Some("rsa-1"), &other);
        assert_eq!(
            run(
                &config,
                &request("/", &[("authorization", &bearer(&token))])
            ),
            missing
        );
        // Its own token passes; listed claims are lists, others are as signed.
        let mut claims = standard_claims();
        claims["scope"] = "read  write admin".into();
        claims["roles"] = json!(["r1", "r2"]);
        claims["words"] = "not a list".into();
        let token = sign("RS256", Some("rsa-1"), &claims);
        let Outcome::Allow { edits, .. } = run(
            &config,
            &request("/", &[("authorization", &bearer(&token))]),
        ) else {
            panic!("denied")
        };
        assert_eq!(
            edits.set,
            [
                ("x-scope".to_string(), "read,write,admin".to_string()),
                ("x-roles".to_string(), "r1,r2".to_string()),
                ("x-words".to_string(), "not a list".to_string()),
            ]
        );
    }

    #[test]
    fn the_rule_is_chosen_by_issuer() {
        let jwks = json!({"keys": [rsa_jwk("rsa-1", None)]}).to_string();
        let config = config(json!({"jwtRules": [
            {"issuer": DEX, "jwks": jwks, "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "email"}]},
            {"issuer": "https://kubernetes.default.svc.cluster.local", "jwks": jwks,
             "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}]},
        ]}));
        let mut claims = standard_claims();
        claims["iss"] = "https://kubernetes.default.svc.cluster.local".into();
        claims["sub"] = "system:serviceaccount:team-a:runner".into();
        let token = sign("RS256", Some("rsa-1"), &claims);
        let Outcome::Allow { edits, .. } = run(
            &config,
            &request("/", &[("authorization", &bearer(&token))]),
        ) else {
            panic!("denied")
        };
        assert_eq!(
            edits.set,
            [(
                "kubeflow-userid".to_string(),
                "system:serviceaccount:team-a:runner".to_string()
            )]
        );

        claims["iss"] = "https://evil.example.com".into();
        let token = sign("RS256", Some("rsa-1"), &claims);
        assert_eq!(
            run(
                &config,
                &request("/", &[("authorization", &bearer(&token))])
            ),
            Outcome::Deny(Denial::because(Cause::IssuerNotConfigured, true))
        );
    }

    #[test]
    fn remote_keys_are_fetched_once_then_used() {
        let config =
            config(json!({"jwtRules": [{"issuer": DEX, "jwksUri": "http://dex:5556/dex/keys"}]}));
        let keys = KeyStore::new(&config, 1);
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let view = request("/", &[("authorization", &bearer(&token))]);
        assert_eq!(
            decide(&config, &caches(&keys), &view, NOW, KeyWait::May),
            Outcome::FetchKeys(0)
        );
        assert_eq!(
            decide(&config, &caches(&keys), &view, NOW, KeyWait::Spent),
            Outcome::Deny(Denial::because(Cause::KeysNotFetched, true)),
            "a request that already waited is answered"
        );
        let keys = fetched(&config, Ok(rsa_jwks_json().as_bytes()));
        assert!(matches!(
            decide(&config, &caches(&keys), &view, NOW, KeyWait::Spent),
            Outcome::Allow { .. }
        ));
    }

    #[test]
    fn an_unknown_kid_waits_for_a_refetch_once_per_interval() {
        let config =
            config(json!({"jwtRules": [{"issuer": DEX, "jwksUri": "http://dex:5556/dex/keys"}]}));
        let keys = fetched(&config, Ok(rsa_jwks_json().as_bytes()));
        let token = sign("RS256", Some("rotated"), &standard_claims());
        let view = request("/", &[("authorization", &bearer(&token))]);
        let key_unknown = Outcome::Deny(Denial::because(Cause::KidUnknown, true));
        assert_eq!(
            decide(&config, &caches(&keys), &view, NOW, KeyWait::May),
            key_unknown,
            "just fetched"
        );
        let later = NOW + config.jwks_refetch_min_interval;
        assert_eq!(
            decide(&config, &caches(&keys), &view, later, KeyWait::May),
            Outcome::FetchKeys(0)
        );
        assert_eq!(
            decide(&config, &caches(&keys), &view, later, KeyWait::Spent),
            key_unknown,
            "after waiting"
        );
    }

    #[test]
    fn a_failed_fetch_is_503_not_401() {
        let config =
            config(json!({"jwtRules": [{"issuer": DEX, "jwksUri": "http://dex:5556/dex/keys"}]}));
        let keys = fetched(&config, Err("HTTP 500".into()));
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let view = request("/", &[("authorization", &bearer(&token))]);
        assert_eq!(
            decide(&config, &caches(&keys), &view, NOW, KeyWait::May),
            Outcome::Deny(Denial::because(Cause::KeysNotFetched, true))
        );
    }

    #[test]
    fn tokens_in_params_and_cookies_are_removed_from_there() {
        let mut value = all_keys_config();
        value["jwtRules"][0]["fromParams"] = json!(["access_token"]);
        value["jwtRules"][0]["fromCookies"] = json!(["id_token"]);
        let config = config(value);
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let Outcome::Allow { edits, .. } = run(
            &config,
            &request(&format!("/x?a=1&access_token={token}"), &[]),
        ) else {
            panic!("denied")
        };
        assert_eq!(edits.path.as_deref(), Some("/x?a=1"));
        let Outcome::Allow { edits, .. } = run(
            &config,
            &request(
                "/x",
                &[("cookie", &format!("id_token={token}; theme=dark"))],
            ),
        ) else {
            panic!("denied")
        };
        assert_eq!(
            edits.set,
            [("cookie".to_string(), "theme=dark".to_string())]
        );
    }
    fn allowed_edits(outcome: Outcome) -> HeaderEdits {
        match outcome {
            Outcome::Allow { edits, .. } => edits,
            other => panic!("not allowed: {other:?}"),
        }
    }

    #[test]
    fn the_session_stays_at_the_gateway_on_every_kind_of_request() {
        let mut value = with_claim_headers(all_keys_config());
        value["skipPaths"] = json!(["^/dex/", "^/oauth2/"]);
        let config = config(value);
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let cookie = "a=1; oauth2_proxy_kubeflow_0=s0; oauth2_proxy_kubeflow_1=s1; b=2";
        let kept = [("cookie".to_string(), "a=1; b=2".to_string())];
        // Authenticated, without a token (requireJwt false), a skipped path,
        // a CORS preflight: the session is gone from each.
        let authenticated = allowed_edits(run(
            &config,
            &request(
                "/jupyter/",
                &[("authorization", &bearer(&token)), ("cookie", cookie)],
            ),
        ));
        assert!(authenticated.set.contains(&kept[0]), "{authenticated:?}");
        assert_eq!(authenticated.session_cookie_bytes, 52);
        let anonymous = allowed_edits(run(&config, &request("/", &[("cookie", cookie)])));
        assert_eq!(anonymous.set, kept);
        let skipped = allowed_edits(run(&config, &request("/dex/auth", &[("cookie", cookie)])));
        assert_eq!(skipped.set, kept);
        let mut preflight = request(
            "/jupyter/api",
            &[
                ("origin", "https://kubeflow.example.com"),
                ("access-control-request-method", "POST"),
                ("cookie", cookie),
            ],
        );
        preflight.method = "OPTIONS".into();
        assert_eq!(allowed_edits(run(&config, &preflight)).set, kept);
        // oauth2-proxy's own paths keep it.
        let exempt = allowed_edits(run(
            &config,
            &request("/oauth2/sign_out", &[("cookie", cookie)]),
        ));
        assert!(exempt.set.is_empty() && !exempt.remove.contains(&"cookie".to_string()));
        // Turned off.
        let mut value = all_keys_config();
        value["session"] = json!({"cookies": []});
        let off = allowed_edits(run(
            &self::config(value),
            &request("/", &[("cookie", cookie)]),
        ));
        assert_eq!(off, HeaderEdits::default());
    }

    #[test]
    fn a_token_in_the_session_cookie_is_found_before_the_shield() {
        let mut value = with_claim_headers(all_keys_config());
        value["jwtRules"][0]["fromCookies"] = json!(["oauth2_proxy_kubeflow"]);
        value["jwtRules"][0]["forwardOriginalToken"] = true.into();
        let config = config(value);
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("jwtRules[0].fromCookies"));
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let outcome = run(
            &config,
            &request(
                "/",
                &[(
                    "cookie",
                    &format!("oauth2_proxy_kubeflow={token}; theme=dark"),
                )],
            ),
        );
        let Outcome::Allow {
            edits, identity, ..
        } = outcome
        else {
            panic!("denied")
        };
        assert!(identity.is_some(), "the token was not found");
        assert!(edits
            .set
            .contains(&("cookie".to_string(), "theme=dark".to_string())));
        assert!(edits.set.contains(&(
            "kubeflow-userid".to_string(),
            "alice@example.com".to_string()
        )));
    }

    #[test]
    fn a_header_over_the_budget_is_431_after_the_shield() {
        let mut value = all_keys_config();
        value["skipPaths"] = json!(["^/healthz$"]);
        value["headerBudgets"] =
            json!([{"paths": ["^/jupyter/", "^/healthz$"], "maxHeaderBytes": 8190}]);
        let config = config(value);
        let session = format!("oauth2_proxy_kubeflow={}", "s".repeat(9000));
        // The session alone was too large: gone, the request fits.
        let edits = allowed_edits(run(
            &config,
            &request("/jupyter/", &[("cookie", &format!("{session}; a=1"))]),
        ));
        assert_eq!(edits.set, [("cookie".to_string(), "a=1".to_string())]);
        // Another header is still too large: 431, naming it, not its value.
        let big = "v".repeat(8190);
        for path in ["/jupyter/", "/healthz"] {
            let Outcome::Deny(denial) = run(
                &config,
                &request(path, &[("cookie", &session), ("x-custom", &big)]),
            ) else {
                panic!("{path}: allowed")
            };
            assert_eq!(denial.reason, Reason::HeaderTooLarge);
            let detail = denial.detail.unwrap();
            assert!(
                detail.contains("`x-custom`") && !detail.contains(&big),
                "{detail}"
            );
        }
        // Outside the budget's paths: passes.
        assert!(matches!(
            run(&config, &request("/pipeline/", &[("x-custom", &big)])),
            Outcome::Allow { .. }
        ));
    }

    #[test]
    fn service_account_tokens_are_reviewed_once_then_cached() {
        let jwks = json!({"keys": [rsa_jwk("rsa-1", None)]}).to_string();
        let config = Config::parse_with_env(
            json!({"jwtRules": [{"issuer": DEX, "jwks": jwks, "tokenReview": {"audiences": ["kfp"]},
                   "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}]}],
                   "authorization": {"rules": [{"match": {"paths": ["^/ns/(?P<ns>[^/]+)"]},
                       "resourceAttributes": {"namespace": "{path.ns}", "resource": "runs"}}]}})
            .to_string()
            .as_bytes(),
            &|_| None,
        )
        .unwrap();
        let keys = KeyStore::new(&config, 1);
        let decisions = SubjectAccessReviewCache::new(10);
        let mut tokens = TokenReviewCache::new(10);
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let view = request("/ns/team-a", &[("authorization", &bearer(&token))]);
        let verified = VerifiedTokenCache::new(10);
        let run = |tokens: &TokenReviewCache| {
            decide(
                &config,
                &Caches {
                    keys: &keys,
                    verified_tokens: &verified,
                    subject_access_reviews: &decisions,
                    token_reviews: tokens,
                },
                &view,
                NOW,
                KeyWait::May,
            )
        };
        assert_eq!(
            run(&tokens),
            Outcome::TokenReview {
                rule: 0,
                token: token.clone()
            }
        );

        let subject = crate::outcome::Subject {
            user: "system:serviceaccount:team-a:runner".into(),
            groups: vec!["system:serviceaccounts".into()],
        };
        tokens.insert(
            verified.digest(&token),
            TokenStatus::Authenticated(subject),
            Duration::from_secs(120),
            NOW,
        );
        let Outcome::SubjectAccessReview { body, .. } = run(&tokens) else {
            panic!("no SubjectAccessReview")
        };
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["spec"]["user"], "system:serviceaccount:team-a:runner");
        assert_eq!(body["spec"]["groups"], json!(["system:serviceaccounts"]));

        tokens.insert(
            verified.digest(&token),
            TokenStatus::Rejected("deleted".into()),
            Duration::from_secs(120),
            NOW,
        );
        assert!(matches!(
            run(&tokens),
            Outcome::Deny(Denial {
                reason: Reason::TokenRevoked,
                ..
            })
        ));
    }

    #[test]
    fn without_a_credential_token_reviews_follow_the_failure_mode() {
        let jwks = json!({"keys": [rsa_jwk("rsa-1", None)]}).to_string();
        let parse = |failure_mode: &str| {
            Config::parse_with_env(
                json!({"jwtRules": [{"issuer": DEX, "jwks": jwks, "tokenReview": {},
                       "outputClaimToHeaders": [{"header": "kubeflow-userid", "claim": "sub"}]}],
                       "authorization": {"apiserver": {"tokenEnv": "UNSET"}, "failureMode": failure_mode}})
                .to_string()
                .as_bytes(),
                &|_| None,
            )
            .unwrap()
        };
        let token = sign("RS256", Some("rsa-1"), &standard_claims());
        let view = request("/", &[("authorization", &bearer(&token))]);
        let run = |config: &Config| {
            let keys = KeyStore::new(config, 1);
            decide(
                config,
                &Caches {
                    keys: &keys,
                    verified_tokens: &VerifiedTokenCache::new(10),
                    subject_access_reviews: &SubjectAccessReviewCache::new(10),
                    token_reviews: &TokenReviewCache::new(10),
                },
                &view,
                NOW,
                KeyWait::May,
            )
        };
        let Outcome::Deny(denial) = run(&parse("deny")) else {
            panic!("a TokenReview was asked for without a credential")
        };
        assert_eq!(denial.reason, Reason::AuthorizerUnavailable);
        assert_eq!(
            denial.detail.as_deref(),
            Some("no API server credential: `UNSET` is not set")
        );
        assert!(matches!(
            run(&parse("allow")),
            Outcome::Allow {
                identity: Some(Identity { reviewed: None, .. }),
                ..
            }
        ));
    }

    #[test]
    fn a_verified_token_is_remembered_and_rechecked_for_expiry() {
        let config = config(with_claim_headers(all_keys_config()));
        let keys = KeyStore::new(&config, 1);
        let verified = VerifiedTokenCache::new(10);
        let decisions = SubjectAccessReviewCache::new(0);
        let tokens = TokenReviewCache::new(0);
        let caches = Caches {
            keys: &keys,
            verified_tokens: &verified,
            subject_access_reviews: &decisions,
            token_reviews: &tokens,
        };
        let mut claims = standard_claims();
        claims["exp"] = (NOW_SECS + 100).into();
        let token = sign("RS256", Some("rsa-1"), &claims);
        let view = request("/", &[("authorization", &bearer(&token))]);
        let first = decide(&config, &caches, &view, NOW, KeyWait::May);
        assert!(matches!(
            first,
            Outcome::Allow {
                identity: Some(_),
                ..
            }
        ));
        assert!(
            verified
                .get(verified.digest(&token), NOW, config.clock_skew, |_| 0)
                .is_some(),
            "remembered"
        );
        assert_eq!(
            decide(&config, &caches, &view, NOW, KeyWait::May),
            first,
            "same answer from the cache"
        );
        let after = NOW + Duration::from_secs(161);
        assert_eq!(
            decide(&config, &caches, &view, after, KeyWait::May),
            Outcome::Deny(Denial::because(Cause::Expired, true))
        );
        // A failed token is never remembered.
        let forged = format!("{}x", &token[..token.len() - 1]);
        let bad = request("/", &[("authorization", &bearer(&forged))]);
        assert!(matches!(
            decide(&config, &caches, &bad, NOW, KeyWait::May),
            Outcome::Deny(_)
        ));
        assert!(verified
            .get(verified.digest(&forged), NOW, config.clock_skew, |_| 0)
            .is_none());
    }
}
