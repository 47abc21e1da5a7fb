//! The broker's metrics, defined in Envoy (admin `/stats`, `/stats/prometheus`).

use std::collections::HashMap;

use crate::broker::event::Metric;
use crate::config::Config;
use crate::proxy_abi::{self, MetricType};

pub struct Metrics(HashMap<Metric, u32>);

impl Metrics {
    pub fn define(config: &Config) -> Metrics {
        let define = |metric: Metric| {
            let kind = if metric.is_gauge() {
                MetricType::Gauge
            } else {
                MetricType::Counter
            };
            let id = proxy_abi::define_metric(kind, &metric.name(config)).ok()?;
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
            let _ = proxy_abi::increment_metric(*id, by);
        }
    }

    pub fn record(&self, metric: Metric, value: u64) {
        if let Some(id) = self.0.get(&metric) {
            let _ = proxy_abi::record_metric(*id, value);
        }
    }
}
