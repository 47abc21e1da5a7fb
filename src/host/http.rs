//! One request: read it, hand it to the broker, and carry out its verdict.

use super::root::KfauthRoot;
use super::state::{host_now, log, report};
use crate::access::Access;
use crate::broker::event::Level;
use crate::broker::verdict::fail_closed;
use crate::broker::Verdict;
use crate::cause::Cause;
use crate::outcome::LocalReply;
use crate::proxy_abi::{self, Action, MapType, Status};
use crate::request::RequestView;

/// A request's headers, for the root it belongs to (`None`: no root, so no
/// configuration either).
pub fn on_request_headers(context_id: u32, root: Option<&KfauthRoot>) -> Action {
    // A map the host serialized wrongly is `SerializationFailure`.
    let view = proxy_abi::get_map(MapType::HttpRequestHeaders)
        .and_then(|bytes| RequestView::from_map(bytes).map_err(|_| Status::SerializationFailure));
    let mut state = root.and_then(|root| root.state().try_borrow_mut().ok());
    let verdict = match (view, state.as_deref_mut().and_then(Option::as_mut)) {
        (Ok(view), Some(vm)) => {
            let verdict = vm.broker.on_request(context_id, view, host_now());
            report(vm);
            verdict
        }
        (Err(status), _) => {
            log(
                Level::Error,
                &format!("cannot read request headers ({status:?})"),
            );
            fail_closed(&RequestView::default(), Cause::HeadersUnreadable)
        }
        // No accepted configuration: Envoy has refused the filter.
        (Ok(view), None) => fail_closed(&view, Cause::NotConfigured),
    };
    drop(state);
    act(verdict)
}

/// Carries out a verdict on the current request (the effective context).
/// `Continue` when the request may go on.
pub fn act(verdict: Verdict) -> Action {
    match verdict {
        Verdict::Continue(edits, access) => {
            note(&access);
            for name in &edits.remove {
                let _ = proxy_abi::remove_map_value(MapType::HttpRequestHeaders, name);
            }
            for (name, value) in &edits.set {
                let _ = proxy_abi::replace_map_value(MapType::HttpRequestHeaders, name, value);
            }
            if let Some(path) = &edits.path {
                let _ = proxy_abi::replace_map_value(MapType::HttpRequestHeaders, ":path", path);
            }
            Action::Continue
        }
        Verdict::Reply(reply, access) => {
            // Before the reply: Envoy may log the request as it is sent.
            note(&access);
            send(&reply);
            Action::Pause
        }
        Verdict::Hold => Action::Pause,
    }
}

/// Writes the access log's fields as filter state.
fn note(access: &Access) {
    for (name, value) in access.fields() {
        let _ = proxy_abi::set_property(name, value);
    }
}

fn send(reply: &LocalReply) {
    let result = match &reply.grpc {
        Some((code, message)) => proxy_abi::send_grpc_response(*code, message),
        None => proxy_abi::send_http_response(
            reply.status,
            &reply
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect::<Vec<_>>(),
            &reply.body,
        ),
    };
    if let Err(status) = result {
        log(
            Level::Error,
            &format!("cannot send the local reply ({status:?})"),
        );
    }
}
