//! Who checks RS* and ES256/ES384 signatures, chosen once at configuration
//! (`signatureVerification`): the host only when it passes a known-answer
//! check, a good and a bad (one bit flipped) signature, for an RSA-2048 key
//! (RS256) and a P-256 key (ES256), each through the same SPKI and signature
//! encodings as every request (hence here, above `jwks`, and not in
//! `signature_host`, which `jwks` uses). The keys were made for this check
//! alone; their private halves were thrown away.

use base64::Engine;

use crate::config_field::ConfigError;
use crate::jwks::{parse_jwks, Algorithm};
use crate::signature_host::{SignatureHost, SignatureVerification};

const KEYS: &str = r#"{"keys":[{"kty":"RSA","kid":"kat-rsa","n":"q-9Ph27duQ0puxWy5_y5CTqf1CY0cv2s_9qR-Kmp6DPoVQ1iUSoow7ZCu453RCUp67qOtf7Sr7xXlXfmuoRrVEcHB-M3wB-hCbPHJnm2eWBVy4aJFkYssfBwjyg2Hxo29P8K7OBOy2SAPkRU5hFsTICm_mWiRqXRc4MNsE5_ttR89zQ6fv2_Lj2zm1d-virP-GN1nySo3JZgRTmQ5mOdnR72JeQvRYkXwaKDp_e6JtVmegDUJYAJzR1kLz57QqkdhMY_lN7k7B4ZVIuZLj8qtdsLW4aDH1olCYEFtM1EBhJjw4hQkeVy9z7K1WQjP_iKQuySPGWyTbV_ZbF0JVaQnQ","e":"AQAB"},{"kty":"EC","kid":"kat-ec","crv":"P-256","x":"_t1_QlByK1uZgN6Hd870rFUPvmHB1zgopnBNTHeF6gw","y":"uX4Wp_ottt_EGZIF3JyThOeDdsBSYq86BRAqPCqWHmg"}]}"#;

const TOKENS: [(Algorithm, &str); 2] = [
    (
        Algorithm::RS256,
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImthdC1yc2EifQ.eyJpc3MiOiJrZmF1dGgga25vd24tYW5zd2VyIGNoZWNrIn0.ICC4qFFojYe-MZspFQnNlVlaVV6DnScQT90ZC0KytqdbLZgSiVuSK8HJnEISJGlCXuNOd0e-Y-V6GxhbSb1QIbzOsc8M3P4HWjxxq-4cUdwe1iAHIODWEVDzHxOvjVdKTmZfjwSDf89HcwH-kqLCpm36Iy9ueDKglIKl1ByF06EX-EJUU4JOZ-6jNCh9Adoa-_OKWF5SJsVbgNL7MEIsqOwlMueWtySXPEldaac1NFzj8w6oZKfg8i6lg4m0WIe8S2k-7dJbKRGklZjErveYhyWJL7OGauvgaV-GGf68wRDSbwOJo5t95PZbU3ko_e6wBxTuUpW6WmutxKfN66OkEA",
    ),
    (
        Algorithm::ES256,
        "eyJhbGciOiJFUzI1NiIsImtpZCI6ImthdC1lYyJ9.eyJpc3MiOiJrZmF1dGgga25vd24tYW5zd2VyIGNoZWNrIn0.OYcnScnPGD4KE9JGZ0LjhbZFUitdun1YAQzdDbzL9LdAqIX0t4l6MhqWzSdPgaAZZqlIyy-gvJovA9k6S6ErxQ",
    ),
];

/// `Ok` when `host` accepts each good signature and refuses each bad one;
/// otherwise what it got wrong. `break_check` flips a bit of the good
/// signatures too (test-only), so a correct host fails.
pub fn check(host: &dyn SignatureHost, break_check: bool) -> Result<(), String> {
    let keys = parse_jwks(KEYS.as_bytes()).map_err(|problem| format!("check keys: {problem}"))?;
    for (algorithm, token) in TOKENS {
        let name = algorithm.name();
        let key = keys
            .keys
            .iter()
            .find_map(|jwk| jwk.key_for(algorithm))
            .ok_or_else(|| format!("no {name} check key"))?;
        let (signed, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| format!("{name} check token"))?;
        let good = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| format!("{name} check signature"))?;
        let mut bad = good.clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        let good = if break_check { bad.clone() } else { good };
        match key.host_check(signed.as_bytes(), &good, host) {
            Some(true) => {}
            Some(false) => return Err(format!("a good {name} signature was refused")),
            None => return Err(format!("no answer for a {name} signature")),
        }
        match key.host_check(signed.as_bytes(), &bad, host) {
            Some(false) => {}
            Some(true) => return Err(format!("a bad {name} signature was accepted")),
            None => return Err(format!("no answer for a bad {name} signature")),
        }
    }
    Ok(())
}

/// The host chosen for a configuration, and the log line that says so.
#[derive(Debug)]
pub struct Choice {
    pub host: Option<&'static dyn SignatureHost>,
    pub note: String,
}

/// Applies `signatureVerification`: runs the known-answer check on `host`
/// unless the mode is `wasm`. `break_check` spoils the check's good
/// signatures (the test-only `testOnlyBreakSignatureCheck`), so that a host
/// failing it can be shown in a real Envoy.
pub fn choose(
    mode: SignatureVerification,
    host: &'static dyn SignatureHost,
    break_check: bool,
) -> Result<Choice, ConfigError> {
    if mode == SignatureVerification::Wasm {
        return Ok(Choice {
            host: None,
            note: "signatures: verified in Wasm (signatureVerification: wasm)".into(),
        });
    }
    match check(host, break_check) {
        Ok(()) => Ok(Choice {
            host: Some(host),
            note: "signatures: RS256/384/512 and ES256/384 verified by Envoy's verify_signature"
                .into(),
        }),
        Err(problem) if mode == SignatureVerification::Auto => Ok(Choice {
            host: None,
            note: format!(
                "signatures: verified in Wasm, Envoy's verify_signature failed its known-answer check ({problem})"
            ),
        }),
        Err(problem) => Err(ConfigError::new(
            "signatureVerification",
            format!("`host`, but Envoy's verify_signature failed its known-answer check ({problem})"),
        )),
    }
}
