//! The broker's metrics, defined in Envoy (admin `/stats`, `/stats/prometheus`).

use std::collections::HashMap;

use proxy_wasm::types::MetricType;

use super::abi;
use crate::broker::event::Metric;
use crate::config::Config;

pub struct Metrics(HashMap<Metric, u32>);

/// `kfauth.signatures.host`: 1 while Envoy's `verify_signature` checks RS*
/// and ES256/ES384 signatures, 0 while kfauth's own code in Wasm does.
pub fn record_signature_gauge(host: bool) {
    if let Ok(id) = abi::define_metric(MetricType::Gauge, "kfauth.signatures.host") {
        let _ = abi::record_metric(id, u64::from(host));
    }
}

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let define = |metric: Metric| {
            let kind = if metric.is_gauge() {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let id = abi::define_metric(kind, &metric.name(config)).ok()?;
            Some((metric, id))
        };
        Metrics(
            Metric::defined(config)
                .into_iter()
                .filter_map(define)
                .collect(),
        )
    }

    pub fn add(&self, metric: Metric, by: u64) {
        if let (Some(id), Ok(by)) = (self.0.get(&metric), i64::try_from(by)) {
            let _ = abi::increment_metric(*id, by);
        }
    }

    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.0.get(&metric) {
            let _ = abi::record_metric(*id, value);
        }
    }
}
