//! The module's side of the ABI: the callbacks Envoy calls (Proxy-Wasm ABI
//! v0.2.1, "Functions exposed by the module"), routed to the root context
//! they belong to. In place of the Rust SDK's dispatcher, which kept a boxed
//! context per request in a map (an allocation, a hash insert, lookup and
//! remove, and three dynamic calls per request) and panicked, trapping the
//! VM, on any id it did not know. Here a request has no object of its own
//! (the broker keeps what it needs by context id); a callback for an id
//! kfauth does not know is ignored, and a request of no known root is
//! refused as unconfigured.
//!
//! Only what kfauth implements is exported: Envoy skips a callback the module
//! does not export, so a request enters the VM three times (context create,
//! request headers, delete), never for its body, response or access log.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::rc::Rc;

use super::http;
use super::root::KfauthRoot;
use crate::proxy_abi::Action;

/// The root contexts of this VM, and which root the requests that have not
/// yet had their headers belong to. Envoy creates a root context per plugin
/// configuration using this VM: a configuration update adds one beside the
/// old, whose open connections finish on it (`tests/config_update.rs`).
struct Contexts {
    roots: Vec<Rc<KfauthRoot>>,
    /// The request context created last, and its root, until its headers
    /// come. Envoy creates a request's context as it hands the filter the
    /// headers (`Context::decodeHeaders` in
    /// source/extensions/common/wasm/context.cc calls `onCreate()`, then
    /// `onRequestHeaders`), so this one slot is all a request needs.
    created: Option<(u32, u32)>,
    /// Contexts created before the one before them had its headers (a host
    /// that creates contexts ahead; not Envoy), by id: their roots.
    early: BTreeMap<u32, u32>,
}

impl Contexts {
    fn root(&self, id: u32) -> Option<&Rc<KfauthRoot>> {
        self.roots.iter().find(|root| root.context_id() == id)
    }

    /// The root of a request whose headers have come, forgotten from then on.
    fn take_root_of(&mut self, stream: u32) -> Option<Rc<KfauthRoot>> {
        let root = match self.created {
            Some((id, root)) if id == stream => {
                self.created = None;
                Some(root)
            }
            _ => self.early.remove(&stream),
        }?;
        self.root(root).cloned()
    }
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = const {
        RefCell::new(Contexts { roots: Vec::new(), created: None, early: BTreeMap::new() })
    };
}

/// Runs `with` on the table, unless it is in use (a callback re-entered from
/// a host call: not one Envoy makes).
fn contexts<T>(with: impl FnOnce(&mut Contexts) -> Option<T>) -> Option<T> {
    CONTEXTS.with(|contexts| with(&mut *contexts.try_borrow_mut().ok()?))
}

/// The root `id`, cloned out so that no borrow of the table is held while it
/// runs (its host calls may re-enter the VM).
fn root(id: u32) -> Option<Rc<KfauthRoot>> {
    contexts(|contexts| contexts.root(id).cloned())
}

/// Marks the ABI version this module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

extern "C" {
    fn __wasm_call_ctors();
}

/// WASI's reactor start: runs the static constructors once, before any callback.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the linker's constructor function, called once, first.
    unsafe { __wasm_call_ctors() }
}

/// Memory the host fills and hands back (`proxy_abi::owned` takes it back as
/// a `Vec` of exactly this length and capacity).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut bytes: Vec<MaybeUninit<u8>> = Vec::with_capacity(size);
    // SAFETY: the capacity is `size`, and uninitialized `MaybeUninit`s are valid.
    unsafe { bytes.set_len(size) };
    Box::into_raw(bytes.into_boxed_slice()).cast()
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    contexts(|contexts| {
        if root_context_id == 0 {
            if contexts.root(context_id).is_none() {
                contexts.roots.push(Rc::new(KfauthRoot::new(context_id)));
            }
        } else if let Some((id, root)) = contexts.created.replace((context_id, root_context_id)) {
            contexts.early.insert(id, root);
        }
        Some(())
    });
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> bool {
    true
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root_context_id: u32, _configuration_size: usize) -> bool {
    root(root_context_id).is_some_and(|root| root.on_configure())
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root_context_id: u32) {
    if let Some(root) = root(root_context_id) {
        root.on_tick();
    }
}

/// A callout's answer, to the context that sent it (kfauth sends from roots).
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    context_id: u32,
    token: u32,
    headers: usize,
    body_size: usize,
    _trailers: usize,
) {
    if let Some(root) = root(context_id) {
        root.on_http_call_response(token, headers, body_size);
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(
    context_id: u32,
    _headers: usize,
    _end_of_stream: bool,
) -> Action {
    let root = contexts(|contexts| contexts.take_root_of(context_id));
    http::on_request_headers(context_id, root.as_deref())
}

/// The end of a request or of a root context.
#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    let ended = contexts(|contexts| {
        if let Some(index) = contexts
            .roots
            .iter()
            .position(|root| root.context_id() == context_id)
        {
            return Some(Some(contexts.roots.remove(index)));
        }
        if contexts.created.is_some_and(|(id, _)| id == context_id) {
            contexts.created = None;
        }
        contexts.early.remove(&context_id);
        Some(None)
    });
    match ended {
        // Table in use: not a callback Envoy makes.
        None => return,
        Some(Some(root)) => {
            root.on_retire();
            return;
        }
        Some(None) => {}
    }
    // A request's root was forgotten with its headers: each root's broker
    // drops what it holds for the request, if anything.
    let mut index: usize = 0;
    while let Some(root) = contexts(|contexts| contexts.roots.get(index).cloned()) {
        root.on_stream_end(context_id);
        index = index.saturating_add(1);
    }
}
