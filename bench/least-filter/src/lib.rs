//! The least a Proxy-Wasm filter can do to take native `jwt_authn`'s place on
//! `make bench`'s requests, built from the design's crates (`base64`,
//! `serde_json`): a bound on what any Wasm filter doing the job costs Envoy,
//! not a product (BENCHMARKS.md, "The least filter").
//!
//! Per request it reads the header map, takes the `authorization` bearer
//! token, and either finds it in a cache of verified tokens (a std `HashMap`,
//! its expiry checked against the host clock) or decodes it (base64url, the
//! header and claims read by serde_json into typed, borrowing structs), checks
//! `alg`, `iss`, `aud` and `exp`, and has Envoy's `verify_signature` check the
//! signature (RS256, or ES256 turned into DER as the host wants it) against
//! the one key it was configured with. Then it removes `authorization` and
//! sets `kubeflow-userid` and `kubeflow-groups`, as native's
//! `claim_to_headers` does; anything else gets a bare 401. Nothing else: no
//! `kid`, no key set, no duplicate-member check, no identity-header strip, no
//! access log, no metric, one algorithm: every one of those is work
//! kfauth does and this filter leaves out, so kfauth cannot cost less.
//!
//! Its configuration: `{"issuer": ..., "audience": ..., "alg": "RS256" or
//! "ES256", "key": base64 of the key's DER SubjectPublicKeyInfo}`.
#![cfg(target_arch = "wasm32")]

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

extern "C" {
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    fn proxy_call_foreign_function(
        name: *const u8,
        name_size: usize,
        arguments: *const u8,
        arguments_size: usize,
        results: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: u32,
    ) -> u32;
}

const REQUEST_HEADERS: u32 = 0;
const PLUGIN_CONFIGURATION: u32 = 7;
/// The most tokens remembered; a full cache is emptied (the cheapest eviction).
const CACHE_SIZE: usize = 1000;

struct Verified {
    exp: u64,
    user: String,
    groups: String,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Claims<'a> {
    #[serde(borrow)]
    iss: Cow<'a, str>,
    #[serde(borrow)]
    aud: Audience<'a>,
    exp: u64,
    #[serde(borrow)]
    email: Cow<'a, str>,
    #[serde(borrow, default)]
    groups: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    #[serde(borrow)]
    One(Cow<'a, str>),
    #[serde(borrow)]
    Many(Vec<Cow<'a, str>>),
}

#[derive(Default)]
struct Filter {
    issuer: String,
    audience: String,
    /// `RS256` or `ES256`: the one algorithm accepted.
    alg: String,
    /// The key as DER SubjectPublicKeyInfo.
    key: Vec<u8>,
    cache: HashMap<Vec<u8>, Verified>,
}

thread_local! {
    static FILTER: RefCell<Filter> = RefCell::default();
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    Box::into_raw(vec![0_u8; size].into_boxed_slice()).cast()
}

/// Takes back what the host wrote into memory from [`proxy_on_memory_allocate`].
fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        return Vec::new();
    }
    // SAFETY: the host filled `size` bytes allocated by `proxy_on_memory_allocate(size)`.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, size)) }.into_vec()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_: u32, _: usize) -> u32 {
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(_: u32, size: usize) -> u32 {
    let (mut data, mut got) = (std::ptr::null_mut(), 0);
    // SAFETY: the host writes a pointer and a size into the two locals.
    let status =
        unsafe { proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, size, &mut data, &mut got) };
    let Ok(config) = serde_json::from_slice::<Value>(&owned(data, got)) else {
        return 0;
    };
    let text = |name: &str| config.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(issuer), Some(audience), Some(key)) = (text("issuer"), text("audience"), text("key"))
    else {
        return 0;
    };
    let alg = text("alg").unwrap_or_else(|| "RS256".to_string());
    if alg != "RS256" && alg != "ES256" {
        return 0;
    }
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(key) else {
        return 0;
    };
    FILTER.with_borrow_mut(|filter| {
        *filter = Filter {
            issuer,
            audience,
            alg,
            key,
            cache: HashMap::new(),
        }
    });
    u32::from(status == 0)
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(_: u32, _: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_delete(_: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(_: u32, _: usize, _: u32) -> u32 {
    let allowed = FILTER.with_borrow_mut(|filter| {
        let pairs = header_pairs();
        let Some(token) = bearer(&pairs) else {
            return false;
        };
        let now = now_seconds();
        if let Some(known) = filter.cache.get(token).filter(|known| known.exp > now) {
            set_identity(known);
            return true;
        }
        let Some(verified) = filter.verify(token, now) else {
            return false;
        };
        set_identity(&verified);
        if filter.cache.len() >= CACHE_SIZE {
            filter.cache.clear();
        }
        filter.cache.insert(token.to_vec(), verified);
        true
    });
    if allowed {
        return 0;
    }
    // SAFETY: every pointer and size is a live slice's.
    unsafe { proxy_send_local_response(401, [].as_ptr(), 0, [].as_ptr(), 0, [].as_ptr(), 0, 0) };
    1
}

/// Native's edits: the token's header goes, the two claim headers are set.
fn set_identity(verified: &Verified) {
    remove_header(b"authorization");
    replace_header(b"kubeflow-userid", verified.user.as_bytes());
    replace_header(b"kubeflow-groups", verified.groups.as_bytes());
}

impl Filter {
    /// The identity in `token` if it is a JWT of the one algorithm, from the
    /// issuer, for the audience, not expired at `now`, and signed with the key.
    fn verify(&self, token: &[u8], now: u64) -> Option<Verified> {
        let mut segments = token.split(|byte| *byte == b'.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return None;
        };
        let decode = |segment| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment);
        let (header, payload) = (decode(header).ok()?, decode(payload).ok()?);
        // Typed and borrowed: serde_json's cheapest way to read a document.
        let header: Header = serde_json::from_slice(&header).ok()?;
        let claims: Claims = serde_json::from_slice(&payload).ok()?;
        let mut signature = decode(signature).ok()?;
        if self.alg == "ES256" {
            signature = ecdsa_der(&signature)?;
        }
        let audience_matches = match &claims.aud {
            Audience::One(one) => *one == self.audience,
            Audience::Many(list) => list.iter().any(|one| *one == self.audience),
        };
        if header.alg != self.alg
            || claims.iss != self.issuer
            || !audience_matches
            || claims.exp <= now
        {
            return None;
        }
        // The signing input is the token up to its last dot.
        let text = token.get(..header_and_payload_length(token)?)?;
        if !self.host_verifies(text, &signature) {
            return None;
        }
        Some(Verified {
            exp: claims.exp,
            user: claims.email.into_owned(),
            groups: claims.groups.join(","),
        })
    }

    /// Envoy's `verify_signature` (envoyproxy/envoy
    /// `source/extensions/common/wasm/ext/verify_signature.proto`): arguments
    /// 1 hash function, 2 key, 3 signature, 4 text; the answer's field 1 is
    /// the verdict.
    fn host_verifies(&self, text: &[u8], signature: &[u8]) -> bool {
        let mut arguments = Vec::with_capacity(text.len() + signature.len() + self.key.len() + 16);
        for (field, bytes) in [
            (1_u8, &b"sha256"[..]),
            (2, &self.key),
            (3, signature),
            (4, text),
        ] {
            arguments.push(field << 3 | 2);
            let mut length = bytes.len();
            while length >= 0x80 {
                arguments.push((length & 0x7f) as u8 | 0x80);
                length >>= 7;
            }
            arguments.push(length as u8);
            arguments.extend_from_slice(bytes);
        }
        let name = b"verify_signature";
        let (mut data, mut size) = (std::ptr::null_mut(), 0);
        // SAFETY: every pointer and size is a live slice's; the host writes the two locals.
        let status = unsafe {
            proxy_call_foreign_function(
                name.as_ptr(),
                name.len(),
                arguments.as_ptr(),
                arguments.len(),
                &mut data,
                &mut size,
            )
        };
        status == 0 && owned(data, size).starts_with(&[0x08, 0x01])
    }
}

/// A JWS ECDSA P-256 signature (`r || s`, 32 bytes each: RFC 7518 section
/// 3.4) as the DER `SEQUENCE { INTEGER r, INTEGER s }` the host verifies.
fn ecdsa_der(signature: &[u8]) -> Option<Vec<u8>> {
    if signature.len() != 64 {
        return None;
    }
    let (r, s) = signature.split_at(32);
    let integer = |value: &[u8]| {
        // Minimal: no leading zero bytes, then one if the top bit is set.
        let value = &value[value.iter().position(|byte| *byte != 0).unwrap_or(31)..];
        let mut out = vec![0x02];
        if value[0] & 0x80 != 0 {
            out.extend([value.len() as u8 + 1, 0]);
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(value);
        out
    };
    let (r, s) = (integer(r), integer(s));
    let mut der = vec![0x30, (r.len() + s.len()) as u8];
    der.extend(r);
    der.extend(s);
    Some(der)
}

fn header_and_payload_length(token: &[u8]) -> Option<usize> {
    token.iter().rposition(|byte| *byte == b'.')
}

/// The request's headers as the host serializes them (ABI 0.2.1): a count,
/// each pair's name and value sizes, then each name and value followed by a NUL.
fn header_pairs() -> Vec<u8> {
    let (mut data, mut size) = (std::ptr::null_mut(), 0);
    // SAFETY: the host writes a pointer and a size into the two locals.
    unsafe { proxy_get_header_map_pairs(REQUEST_HEADERS, &mut data, &mut size) };
    owned(data, size)
}

/// The token of the first `authorization` header, if it is `Bearer <token>`.
fn bearer(pairs: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let bytes = pairs.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    let count = word(0)?;
    let mut text = count.checked_mul(8)?.checked_add(4)?;
    for pair in 0..count {
        let name_size = word(4 + pair * 8)?;
        let value_size = word(8 + pair * 8)?;
        let name = pairs.get(text..text + name_size)?;
        let value_at = text + name_size + 1;
        let value = pairs.get(value_at..value_at + value_size)?;
        if name == b"authorization" {
            return value.strip_prefix(b"Bearer ");
        }
        text = value_at + value_size + 1;
    }
    None
}

fn now_seconds() -> u64 {
    let mut nanos = 0;
    // SAFETY: the host writes the time into the local.
    unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    nanos / 1_000_000_000
}

fn remove_header(name: &[u8]) {
    // SAFETY: the pointer and size are a live slice's.
    unsafe { proxy_remove_header_map_value(REQUEST_HEADERS, name.as_ptr(), name.len()) };
}

fn replace_header(name: &[u8], value: &[u8]) {
    // SAFETY: the pointers and sizes are live slices'.
    unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
}
