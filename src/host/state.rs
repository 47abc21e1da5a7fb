//! What one VM's root and requests share: the broker, once a configuration is
//! accepted, and the metric ids its events name.

use std::cell::RefCell;
use std::time::Duration;

use super::metrics::Metrics;
use crate::broker::event::{Event, Level};
use crate::broker::Broker;
use crate::proxy_abi::{self, LogLevel};

pub struct Vm {
    pub broker: Broker,
    pub metrics: Metrics,
}

/// `None` until the first configuration is accepted.
pub type SharedState = RefCell<Option<Vm>>;

/// The host clock as time since the epoch; never a library's own clock.
pub fn host_now() -> Duration {
    proxy_abi::current_time().unwrap_or_default()
}

/// Carries out the broker's events (metrics, log lines) and its tick period.
/// These host calls never re-enter the VM.
pub fn report(vm: &mut Vm) {
    while let Some(event) = vm.broker.poll_event() {
        match event {
            Event::Count(metric, by) => vm.metrics.add(metric, by),
            Event::Record(metric, value) => vm.metrics.record(metric, value),
            Event::Log(level, line) => log(level, &line),
        }
    }
    if let Some(period) = vm.broker.poll_tick_period() {
        let _ = proxy_abi::set_tick_period(period);
    }
}

/// Whether the host writes debug lines (Envoy's `wasm` logger at `debug` or
/// `trace`). Unknown, it is taken to: a line too many, not one lost.
pub fn host_logs_debug() -> bool {
    proxy_abi::log_level().map_or(true, |level| level <= LogLevel::Debug as u32)
}

/// One log line; Envoy prefixes it with the plugin name (`wasm log kfauth`).
pub fn log(level: Level, line: &str) {
    let level = match level {
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    };
    let _ = proxy_abi::log(level, line);
}
