//! [`SignatureHost`] by Envoy's `verify_signature` foreign function
//! (envoyproxy/envoy `source/extensions/common/wasm/foreign.cc`, since PR
//! 32127): it parses a `VerifySignatureArguments`, imports the DER key with
//! BoringSSL's `EVP_parse_public_key`, runs `EVP_DigestVerify` (PKCS#1 v1.5
//! for RSA keys) and answers a `VerifySignatureResult`; an unreadable key or
//! message is BAD_ARGUMENT, and a missing function NOT_FOUND.

use std::ptr::null_mut;

use super::state::log;
use crate::broker::event::Level;
use crate::config::Config;
use crate::signature_host::{choose, wire, HashFunction, SignatureHost, SignatureVerification};

#[link(wasm_import_module = "env")]
extern "C" {
    // Proxy-Wasm ABI v0.2.1, "Foreign function interface".
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        parameters_data: *const u8,
        parameters_size: usize,
        return_results_data: *mut *mut u8,
        return_results_size: *mut usize,
    ) -> u32;
}

const FUNCTION: &str = "verify_signature";

#[derive(Debug)]
pub struct EnvoySignatures;

pub static ENVOY: EnvoySignatures = EnvoySignatures;

impl SignatureHost for EnvoySignatures {
    fn verify(
        &self,
        hash: HashFunction,
        public_key: &[u8],
        signature: &[u8],
        text: &[u8],
    ) -> Option<bool> {
        let arguments = wire::arguments(hash, public_key, signature, text);
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: the name and arguments are live for the call; the host writes
        // the out-parameters.
        let status = unsafe {
            proxy_call_foreign_function(
                FUNCTION.as_ptr(),
                FUNCTION.len(),
                arguments.as_ptr(),
                arguments.len(),
                &mut data,
                &mut size,
            )
        };
        if status != 0 {
            return None;
        }
        // SAFETY: OK, so `data`/`size` are host-allocated memory given to us
        // (or null: an empty message, every field at its default, `result: false`).
        let answer = unsafe { super::abi::owned(data, size) };
        wire::result(&answer)
    }
}

/// Applies `signatureVerification` at configuration: runs the known-answer
/// check, logs the outcome in one line, sets the gauge and gives the inline
/// key sets their host. Returns the host for the fetched key sets, or `None`
/// (logged) when the configuration must be refused.
pub fn configure(config: &mut Config) -> Option<Option<&'static dyn SignatureHost>> {
    let mode = config.signature_verification;
    let choice = match choose(mode, &ENVOY, config.break_signature_check) {
        Ok(choice) => choice,
        Err(problem) => {
            log(Level::Error, &problem.to_string());
            return None;
        }
    };
    match choice.host {
        None if mode == SignatureVerification::Auto => log(Level::Warn, &choice.note),
        _ => log(Level::Info, &choice.note),
    }
    super::metrics::record_signature_gauge(choice.host.is_some());
    config.use_signature_host(choice.host);
    Some(choice.host)
}
