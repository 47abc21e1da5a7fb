//! Bindings to the Proxy-Wasm ABI v0.2.1 host functions kfauth uses
//! (<https://github.com/proxy-wasm/spec/tree/main/abi-versions/v0.2.1>), in
//! place of the Rust SDK's `hostcalls`: plumbing with no kfauth concept in
//! it, called by `host` alone. Compiled for `wasm32-wasip1` only.
//!
//! The SDK's `hostcalls` panic on any status they did not expect (and on a
//! header value that is not UTF-8); with `panic = "abort"` a panic traps the
//! VM and its worker answers 503 from then on. These wrappers answer
//! `Err(status)` for every status instead, and never panic or index.
//!
//! Enums cross the boundary as `u32` (their `#[repr(u32)]` value) and statuses
//! come back as `u32`: a host status [`Status`] has no variant for
//! (INVALID_MEMORY_ACCESS = 6, UNIMPLEMENTED = 12, or any other) is reported
//! as `Status::InternalFailure`.
//!
//! Memory the host returns (`return_*_data`) was allocated in this VM through
//! `proxy_on_memory_allocate` (`host::exports`, a boxed byte slice of exactly
//! the size asked for), so it is ours: we take it back as a `Vec` of that
//! length and capacity, which frees it when dropped.

use std::ptr::{null, null_mut};
use std::time::Duration;

use crate::header_pairs;

mod types;
pub use types::{Action, BufferType, LogLevel, MapType, MetricType, Status};

/// `proxy_stream_type_t` HTTP_REQUEST.
const STREAM_HTTP_REQUEST: u32 = 0;

// Signatures as in the specification's "Functions exposed by the host":
// every `i32` parameter is a `u32`, `usize` or pointer on wasm32.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(log_level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_log_level: *mut u32) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(tick_period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_id: u32,
        start: usize,
        max_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_id: u32,
        return_serialized_pairs_data: *mut *mut u8,
        return_serialized_pairs_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_id: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_id: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_id: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        serialized_headers_data: *const u8,
        serialized_headers_size: usize,
        grpc_status: u32,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        metric_name_data: *const u8,
        metric_name_size: usize,
        return_metric_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_http_call(
        upstream_data: *const u8,
        upstream_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        body_data: *const u8,
        body_size: usize,
        trailers_data: *const u8,
        trailers_size: usize,
        timeout_milliseconds: u32,
        return_callout_id: *mut u32,
    ) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        parameters_data: *const u8,
        parameters_size: usize,
        return_results_data: *mut *mut u8,
        return_results_size: *mut usize,
    ) -> u32;
}

/// `Ok` for OK, the status otherwise (unknown codes as InternalFailure).
fn check(code: u32) -> Result<(), Status> {
    match code {
        0 => Ok(()),
        1 => Err(Status::NotFound),
        2 => Err(Status::BadArgument),
        3 => Err(Status::SerializationFailure),
        4 => Err(Status::ParseFailure),
        7 => Err(Status::Empty),
        8 => Err(Status::CasMismatch),
        _ => Err(Status::InternalFailure),
    }
}

/// Takes ownership of bytes the host allocated in this VM (see the module note).
///
/// # Safety
/// `data` is null, or was returned by the host together with `size` from a
/// call that answered OK, and is taken back once.
unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        // SAFETY: allocated by `proxy_on_memory_allocate(size)` as `size` bytes
        // of alignment 1, all written by the host, and not owned elsewhere.
        unsafe { Vec::from_raw_parts(data, size, size) }
    }
}

/// The ABI's tick period is a u32 of milliseconds: a longer one (over 49 days)
/// is clamped, not wrapped.
fn millis(period: Duration) -> u32 {
    u32::try_from(period.as_millis()).unwrap_or(u32::MAX)
}

pub fn log(level: LogLevel, message: &str) -> Result<(), Status> {
    // SAFETY: the message is a live slice for the duration of the call.
    check(unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) })
}

/// The lowest level the host writes to its log (`LogLevel` as `u32`:
/// trace 0 ... critical 5); a line below it is dropped by the host.
pub fn log_level() -> Result<u32, Status> {
    let mut level: u32 = 0;
    // SAFETY: `level` is a live u32 the host writes.
    check(unsafe { proxy_get_log_level(&mut level) })?;
    Ok(level)
}

/// The host clock, as time since the Unix epoch.
pub fn current_time() -> Result<Duration, Status> {
    let mut nanos: u64 = 0;
    // SAFETY: `nanos` is a live u64 the host writes.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(Duration::from_nanos(nanos))
}

pub fn set_tick_period(period: Duration) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(millis(period)) })
}

/// Up to `max_size` bytes of a buffer from `start`; NOT_FOUND (no such buffer
/// now) is `Err(NotFound)`.
pub fn get_buffer(buffer: BufferType, start: usize, max_size: usize) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes the two live out-parameters.
    let code =
        unsafe { proxy_get_buffer_bytes(buffer as u32, start, max_size, &mut data, &mut size) };
    // On failure the host returned no memory; nothing to take back.
    check(code)?;
    // SAFETY: OK, so `data`/`size` describe host-allocated memory given to us.
    Ok(unsafe { owned(data, size) })
}

/// A header map as the host serialized it (`header_pairs`), for the core to read.
pub fn get_map(map: MapType) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes the two live out-parameters.
    check(unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) })?;
    // SAFETY: OK, so `data`/`size` describe host-allocated memory given to us.
    Ok(unsafe { owned(data, size) })
}

/// One header's value; `Ok(None)` when the map has no such header.
pub fn get_map_value(map: MapType, name: &str) -> Result<Option<String>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: `name` is live for the call; the host writes the out-parameters.
    let code = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match check(code) {
        // SAFETY: OK, so `data`/`size` describe host-allocated memory given to us.
        Ok(()) => Ok(Some(header_pairs::lossy(&unsafe { owned(data, size) }))),
        Err(Status::NotFound) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Sets a header, replacing every value it had.
pub fn replace_map_value(map: MapType, name: &str, value: &str) -> Result<(), Status> {
    // SAFETY: `name` and `value` are live for the call.
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of a header (OK when there was none).
pub fn remove_map_value(map: MapType, name: &str) -> Result<(), Status> {
    // SAFETY: `name` is live for the call.
    check(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// Lets the effective context's paused request go on.
pub fn resume_http_request() -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(STREAM_HTTP_REQUEST) })
}

/// Answers the effective context's request locally.
pub fn send_http_response(
    status_code: u32,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), Status> {
    let headers = header_pairs::encode(headers).map_err(|_| Status::BadArgument)?;
    // SAFETY: every slice is live for the call; no details (null, 0).
    check(unsafe {
        proxy_send_local_response(
            status_code,
            null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            // -1 as the ABI's uint32_t: no gRPC status.
            u32::MAX,
        )
    })
}

/// Answers the effective context's gRPC request locally: HTTP 200 with
/// `grpc-status` and `grpc-message` (the host takes the body as the message).
pub fn send_grpc_response(code: u32, message: &str) -> Result<(), Status> {
    let metadata = header_pairs::encode::<&str, &str>(&[]).map_err(|_| Status::BadArgument)?;
    // SAFETY: every slice is live for the call; no details (null, 0).
    check(unsafe {
        proxy_send_local_response(
            200,
            null(),
            0,
            message.as_ptr(),
            message.len(),
            metadata.as_ptr(),
            metadata.len(),
            code,
        )
    })
}

/// Makes `context_id` the context later calls act on (BAD_ARGUMENT when the
/// host no longer knows it, e.g. the request has ended).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// A shared-data value and its CAS; `Ok(None)` when the key is not set.
pub fn get_shared_data(key: &str) -> Result<Option<(Vec<u8>, u32)>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    let mut cas: u32 = 0;
    // SAFETY: `key` is live for the call; the host writes the out-parameters.
    let code =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match check(code) {
        // An empty value comes back as no memory at all, but with its CAS
        // (proxy-wasm-cpp-host's `copyToPointerSize`): it is set, and a write
        // must carry that CAS to be a compare-and-swap.
        Ok(()) if data.is_null() => Ok(Some((Vec::new(), cas))),
        // SAFETY: OK, so `data`/`size` describe host-allocated memory given to us.
        Ok(()) => Ok(Some((unsafe { owned(data, size) }, cas))),
        Err(Status::NotFound) => Ok(None),
        Err(status) => Err(status),
    }
}

/// Sets a shared-data value if its CAS is still `cas` (`None`: unconditionally).
pub fn set_shared_data(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
    // SAFETY: `key` and `value` are live for the call.
    check(unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas.unwrap_or(0),
        )
    })
}

pub fn define_metric(metric_type: MetricType, name: &str) -> Result<u32, Status> {
    let mut id: u32 = 0;
    // SAFETY: `name` is live for the call; the host writes `id`.
    check(unsafe { proxy_define_metric(metric_type as u32, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    // SAFETY: no pointers.
    check(unsafe { proxy_record_metric(id, value) })
}

/// Sets a property of the effective context's request. `path` is one
/// segment (the ABI joins segments with NUL); Envoy keeps the value as filter
/// state under `wasm.<path>` (`Context::setProperty`,
/// source/extensions/common/wasm/context.cc), which access logs read.
pub fn set_property(path: &str, value: &str) -> Result<(), Status> {
    // SAFETY: `path` and `value` are live for the call.
    check(unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) })
}

/// Calls the host's foreign function `name` with serialized `arguments`;
/// its serialized answer (empty when the host returned no memory).
pub fn call_foreign_function(name: &str, arguments: &[u8]) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    // SAFETY: `name` and `arguments` are live for the call; the host writes
    // the out-parameters.
    check(unsafe {
        proxy_call_foreign_function(
            name.as_ptr(),
            name.len(),
            arguments.as_ptr(),
            arguments.len(),
            &mut data,
            &mut size,
        )
    })?;
    // SAFETY: OK, so `data`/`size` describe host-allocated memory given to us.
    Ok(unsafe { owned(data, size) })
}

/// Starts an HTTP callout from the effective context; its answer comes to
/// `proxy_on_http_call_response` with that context's id and the returned
/// token. Envoy's `httpCall` answers BAD_ARGUMENT for an unknown cluster and
/// INTERNAL_FAILURE when it cannot start the request.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<u32, Status> {
    let headers = header_pairs::encode(headers).map_err(|_| Status::BadArgument)?;
    let trailers = header_pairs::encode::<&str, &str>(&[]).map_err(|_| Status::BadArgument)?;
    let body = body.unwrap_or_default();
    let mut token: u32 = 0;
    // SAFETY: every slice is live for the call; the host writes `token`.
    check(unsafe {
        proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            headers.as_ptr(),
            headers.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            millis(timeout),
            &mut token,
        )
    })?;
    Ok(token)
}
