//! What becomes of a request: it goes on with header edits, is answered
//! locally, or is held. The refusal's log line and reply are made here.

use super::event::{Level, Metric};
use super::Broker;
use crate::access::Access;
use crate::cause::Cause;
use crate::outcome::{is_grpc_content_type, local_reply, Denial, HeaderEdits, LocalReply};
use crate::request::RequestView;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Apply the edits and let the request go upstream; write the access
    /// log's fields.
    Continue(HeaderEdits, Access),
    /// Answer the request with this reply; write the access log's fields.
    Reply(LocalReply, Access),
    /// The broker holds the request; `poll_resume` will say what to do.
    Hold,
}

/// The one log line of a refusal: the reason word and, where the core knows
/// it, the cause (`token_malformed: header not JSON`). A header over its
/// budget is named with its size (the detail never holds a value).
pub fn refusal_line(view: &RequestView, denial: &Denial) -> String {
    format!(
        "denied {} {} {}: {denial}",
        denial.reason.http_status(),
        view.method,
        view.path_only(),
    )
}

/// The reply to a refusal, gRPC or plain HTTP by the request's content type.
pub fn reply(view: &RequestView, denial: &Denial) -> LocalReply {
    local_reply(denial, is_grpc_content_type(view.header("content-type")))
}

impl Broker {
    /// Lets a request go on, reporting what the cookie edits removed.
    pub(super) fn proceed(
        &mut self,
        view: &RequestView,
        edits: HeaderEdits,
        access: Access,
    ) -> Verdict {
        if edits.stripped_cookie_bytes > 0 {
            self.count(Metric::CookieStripped);
            let bytes = edits.stripped_cookie_bytes;
            self.debug(|| format!("gRPC cookie diet: removed {bytes} bytes of Cookie"));
        }
        if edits.session_cookie_bytes > 0 {
            self.count(Metric::SessionCookieStripped);
            let bytes = edits.session_cookie_bytes;
            self.debug(|| format!("session: removed {bytes} bytes of session cookies"));
        }
        Verdict::Continue(edits.for_host(view), access)
    }

    /// Answers a request with a refusal, and logs one line.
    pub(super) fn refuse(
        &mut self,
        view: &RequestView,
        denial: &Denial,
        mut access: Access,
    ) -> Verdict {
        self.log(Level::Info, refusal_line(view, denial));
        access.refused(denial);
        Verdict::Reply(reply(view, denial), access)
    }
}

/// A request kfauth cannot serve (no accepted configuration, or headers it
/// cannot read, which could carry a spoofed identity header that would then
/// not be removed): fail closed with 503. The host logs why.
pub fn fail_closed(view: &RequestView, cause: Cause) -> Verdict {
    let denial = Denial::because(cause, false);
    let mut access = Access::default();
    access.refused(&denial);
    Verdict::Reply(reply(view, &denial), access)
}
