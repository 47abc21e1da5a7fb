//! `kfauth explain`: what the filter would do with one request, offline.
//!
//! The answer comes from the filter's own [`Broker`], fed the request and,
//! in place of Envoy's callouts, the JWKS files and the review answer given
//! on the command line: the same code decides here and in the gateway. The
//! steps printed before it ([`trace`]) re-run the core's public pieces in the
//! pipeline's order, so the filter's hot path carries no tracing at all.

pub mod answers;
pub mod trace;

use std::time::Duration;

use serde_json::Value;

use super::check::any_env;
use super::manifests::{documents, kind, name};
use crate::broker::event::{Event, Level};
use crate::broker::{Broker, Verdict};
use crate::config::Config;
use crate::keystore::shared::MemorySharedData;
use crate::outcome::HeaderEdits;
use crate::request::RequestView;
use answers::{Answered, ReviewAnswer};

/// The request to explain.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub host: String,
    /// With its query string.
    pub path: String,
    /// Names as given; the view lower-cases them as Envoy does.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The request as Envoy hands it to the filter. Envoy keeps
    /// `Authorization` as an inline header and appends a repeated one to the
    /// first with `,` (envoyproxy/envoy `source/common/http/header_map_impl.cc`,
    /// `HeaderMapImpl::insertByKey`): two of them reach kfauth as one value.
    pub fn view(&self) -> RequestView {
        let mut pairs = vec![
            (":method".to_string(), self.method.clone()),
            (":path".to_string(), self.path.clone()),
            (":authority".to_string(), self.host.clone()),
        ];
        for (name, value) in &self.headers {
            let joined = name.eq_ignore_ascii_case("authorization")
                && pairs.iter_mut().any(|(first, existing)| {
                    let same = first.eq_ignore_ascii_case(name);
                    if same {
                        existing.push(',');
                        existing.push_str(value);
                    }
                    same
                });
            if !joined {
                pairs.push((name.clone(), value.clone()));
            }
        }
        RequestView::from_pairs(pairs)
    }
}

/// Everything `explain` reads.
pub struct Inputs {
    /// A pluginConfig (JSON or YAML) or manifests holding one WasmPlugin.
    pub config_text: String,
    /// The JWKS document of each remote issuer.
    pub jwks: Vec<(String, Vec<u8>)>,
    pub request: Request,
    /// Host clock, since the epoch.
    pub now: Duration,
    /// What the API server answers; `None`: stop where kfauth would ask.
    pub review_answer: Option<ReviewAnswer>,
}

/// How the request ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It goes upstream.
    Allowed,
    /// kfauth answers it (401, 403, 431, 503...).
    Refused,
    /// kfauth holds it for an API-server review no answer was given for.
    Waits,
}

/// The steps, one line each, and the decision.
#[derive(Debug)]
pub struct Explanation {
    pub lines: Vec<String>,
    pub decision: Decision,
    /// The reply's status (200 for a request that goes upstream or a gRPC reply).
    pub status: Option<u32>,
    /// The reason word of a refusal.
    pub reason: Option<String>,
}

/// The one pluginConfig in `text`: a bare one, or the only WasmPlugin's.
pub fn plugin_config(text: &str) -> Result<(String, Value), String> {
    let mut found: Vec<(String, Value)> = Vec::new();
    for doc in documents(text)? {
        match kind(&doc) {
            Some("WasmPlugin") => found.push((
                format!("WasmPlugin {}", name(&doc)),
                doc.pointer("/spec/pluginConfig")
                    .cloned()
                    .unwrap_or(Value::Null),
            )),
            Some(_) => {}
            None => found.push(("pluginConfig".into(), doc)),
        }
    }
    match (found.pop(), found.is_empty()) {
        (Some(one), true) => Ok(one),
        (None, _) => Err("no pluginConfig or WasmPlugin found".into()),
        (Some(_), false) => Err(
            "several pluginConfigs or WasmPlugins: give a file with one (e.g. `kubectl kustomize | yq`)"
                .into(),
        ),
    }
}

/// Parses the configuration as the filter does; `tokenEnv` variables are
/// taken as set (the gateway's pod has them).
fn parse(value: &Value) -> Result<Config, String> {
    let bytes = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    Config::parse_with_env(&bytes, &any_env).map_err(|problem| {
        format!("the filter refuses this configuration: {problem} (see `kfauth check`)")
    })
}

/// Explains what kfauth does with `inputs.request`. `Err`: inputs that
/// cannot be used (a configuration the filter refuses, an unreadable file).
pub fn explain(inputs: &Inputs) -> Result<Explanation, String> {
    let (label, value) = plugin_config(&inputs.config_text)?;
    let config = parse(&value)?;
    let view = inputs.request.view();
    let mut lines = vec![format!(
        "request: {} {} (host {}), {} header(s); time {}",
        view.method,
        view.path,
        view.authority,
        view.headers.len(),
        inputs.now.as_secs()
    )];
    lines.push(format!(
        "config: {label}, {} jwt rule(s){}",
        config.rules.len(),
        if config.authorization.is_some() {
            ", authorization"
        } else {
            ""
        }
    ));
    for warning in &config.warnings {
        lines.push(format!("config warning: {warning}"));
    }
    let mut broker = Broker::new(
        parse(&value)?,
        Box::new(MemorySharedData::default()),
        inputs.now,
    );
    let mut answers = answers::Answers::new(&config, inputs);
    // The gateway fetches remote keys on its first tick, before requests come.
    broker.on_tick(inputs.now);
    if answers.serve(&mut broker, &mut lines) == Answered::Stopped {
        return Ok(waits(lines));
    }
    drain_logs(&mut broker, &mut lines);
    lines.extend(trace::steps(&config, &inputs.jwks, &view, inputs.now));
    let mut verdict = broker.on_request(1, view, inputs.now);
    // A held request: answer what it waits for, tick, and take its resume.
    for _ in 0..8 {
        if verdict != Verdict::Hold {
            break;
        }
        if answers.serve(&mut broker, &mut lines) == Answered::Stopped {
            drain_logs(&mut broker, &mut lines);
            return Ok(waits(lines));
        }
        broker.on_tick(inputs.now);
        if answers.serve(&mut broker, &mut lines) == Answered::Stopped {
            drain_logs(&mut broker, &mut lines);
            return Ok(waits(lines));
        }
        if let Some(resume) = broker.poll_resume() {
            verdict = resume.verdict;
        }
    }
    drain_logs(&mut broker, &mut lines);
    let guarded = !trace::passes_unauthenticated(&config, &inputs.request.view());
    if config.authorization.is_some()
        && guarded
        && !answers.reviewed
        && matches!(verdict, Verdict::Continue(..))
    {
        // A fresh broker has no cached answer, and credentials are taken as set.
        lines.push("authorization: no rule matches this request: not guarded".into());
    }
    Ok(finish(lines, verdict))
}

fn waits(mut lines: Vec<String>) -> Explanation {
    lines.push(
        "answer: none yet: kfauth holds the request until the API server answers \
         (give --review-answer allowed|denied|unavailable|FILE to go on)"
            .into(),
    );
    Explanation {
        lines,
        decision: Decision::Waits,
        status: None,
        reason: None,
    }
}

fn finish(mut lines: Vec<String>, verdict: Verdict) -> Explanation {
    match verdict {
        Verdict::Continue(edits, _) => {
            lines.extend(edit_lines(&edits));
            lines.push("answer: allowed: the request goes upstream".into());
            Explanation {
                lines,
                decision: Decision::Allowed,
                status: Some(200),
                reason: None,
            }
        }
        Verdict::Reply(reply, _) => {
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let reason = match &reply.grpc {
                Some((_, word)) => Some(word.clone()),
                None => body
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            };
            let word = reason.as_deref().unwrap_or("?");
            lines.push(match &reply.grpc {
                Some((code, _)) => {
                    format!("answer: refused: gRPC status {code}, grpc-message {word}")
                }
                None => format!(
                    "answer: refused: {} {}{}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body),
                    reply
                        .headers
                        .iter()
                        .filter(|(name, _)| name != "content-type")
                        .map(|(name, value)| format!("; {name}: {value}"))
                        .collect::<String>()
                ),
            });
            Explanation {
                lines,
                decision: Decision::Refused,
                status: Some(reply.status),
                reason,
            }
        }
        Verdict::Hold => {
            lines.push("answer: none: the request is still held (a bug; please report)".into());
            Explanation {
                lines,
                decision: Decision::Waits,
                status: None,
                reason: None,
            }
        }
    }
}

/// The edits of a request that goes upstream.
fn edit_lines(edits: &HeaderEdits) -> Vec<String> {
    let mut lines = Vec::new();
    for name in &edits.remove {
        lines.push(format!("upstream: header `{name}` removed"));
    }
    for (name, value) in &edits.set {
        let shown = if name == "cookie" {
            format!("({} bytes)", value.len())
        } else {
            format!("`{value}`")
        };
        lines.push(format!("upstream: header `{name}` set to {shown}"));
    }
    if let Some(path) = &edits.path {
        lines.push(format!("upstream: path rewritten to `{path}`"));
    }
    if edits.session_cookie_bytes > 0 {
        lines.push(format!(
            "upstream: session cookies removed ({} bytes)",
            edits.session_cookie_bytes
        ));
    }
    if edits.stripped_cookie_bytes > 0 {
        lines.push(format!(
            "upstream: gRPC cookie diet removed {} bytes of Cookie",
            edits.stripped_cookie_bytes
        ));
    }
    if lines.is_empty() {
        lines.push("upstream: no header changed".into());
    }
    lines
}

/// The filter's own log lines from `info` up (a refusal's names its cause).
fn drain_logs(broker: &mut Broker, lines: &mut Vec<String>) {
    while let Some(event) = broker.poll_event() {
        if let Event::Log(level, text) = event {
            let level = match level {
                Level::Debug => continue,
                Level::Info => "info",
                Level::Warn => "warning",
                Level::Error => "error",
            };
            lines.push(format!("filter log ({level}): {text}"));
        }
    }
}

#[cfg(test)]
mod tests;
