//! Envoy's statistics as the admin interface shows them (`/stats`,
//! `/stats/prometheus`), looked up by the name kfauth gives a metric.
//! Envoy may prefix a wasm metric's name (`wasmcustom.kfauth.jwt.allowed`),
//! so lookups match on a dotted suffix.

/// One `/stats` snapshot: every counter and gauge with an integer value
/// (histograms are left out).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    entries: Vec<(String, u64)>,
}

impl Stats {
    /// Parses the text of `/stats` (`name: value` lines).
    pub fn parse(text: &str) -> Stats {
        let entries = text
            .lines()
            .filter_map(|line| line.rsplit_once(": "))
            .filter_map(|(name, value)| Some((name.trim().to_string(), value.trim().parse().ok()?)))
            .collect();
        Stats { entries }
    }

    /// Names and values of the statistics whose name is `suffix` or ends
    /// with `.suffix`.
    pub fn matching(&self, suffix: &str) -> Vec<(&str, u64)> {
        let dotted = format!(".{suffix}");
        self.entries
            .iter()
            .filter(|(name, _)| name == suffix || name.ends_with(&dotted))
            .map(|(name, value)| (name.as_str(), *value))
            .collect()
    }

    /// The value of the statistic named `suffix` (see [`Stats::matching`]);
    /// `None` if Envoy has none; panics if several match.
    pub fn get(&self, suffix: &str) -> Option<u64> {
        let found = self.matching(suffix);
        assert!(
            found.len() <= 1,
            "several statistics match {suffix}: {found:?}"
        );
        found.first().map(|(_, value)| *value)
    }

    /// Like [`Stats::get`], but 0 when the statistic does not exist (yet):
    /// a counter Envoy has not seen is a counter that has not moved.
    pub fn counter(&self, suffix: &str) -> u64 {
        self.get(suffix).unwrap_or(0)
    }

    /// Connections each worker accepted on the kfauth listener
    /// (`listener.ADDR.worker_N.downstream_cx_total`), by worker index: shows
    /// whether a scenario's requests reached every worker's VM.
    pub fn connections_per_worker(&self) -> Vec<u64> {
        let mut workers: Vec<(u32, u64)> = self
            .entries
            .iter()
            .filter(|(name, _)| {
                name.starts_with("listener.") && !name.starts_with("listener.admin.")
            })
            .filter_map(|(name, value)| {
                let rest = name.strip_suffix(".downstream_cx_total")?;
                let (_, worker) = rest.rsplit_once(".worker_")?;
                Some((worker.parse().ok()?, *value))
            })
            .collect();
        workers.sort_unstable();
        workers.into_iter().map(|(_, value)| value).collect()
    }

    /// Every statistic whose name contains `part`, for failure messages.
    pub fn containing(&self, part: &str) -> Vec<(&str, u64)> {
        self.entries
            .iter()
            .filter(|(name, _)| name.contains(part))
            .map(|(name, value)| (name.as_str(), *value))
            .collect()
    }
}

/// The samples of a `/stats/prometheus` page whose metric name is `name` or
/// ends with `_name` (kfauth's dotted name with dots as underscores), as
/// (metric name with labels, value).
pub fn prometheus_samples(text: &str, dotted_name: &str) -> Vec<(String, f64)> {
    let name = dotted_name.replace('.', "_");
    let suffix = format!("_{name}");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_string(), value.trim().parse().ok()?)))
        .filter(|(series, _)| {
            let metric = series.split('{').next().unwrap_or_default();
            metric == name || metric.ends_with(&suffix)
        })
        .collect()
}

/// The suffix kfauth's per-issuer gauges carry: the issuer with every
/// character outside `[A-Za-z0-9]` replaced by `_`.
pub fn issuer_metric_suffix(issuer: &str) -> String {
    issuer
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATS: &str = "cluster.upstream.upstream_rq_200: 3\n\
        wasmcustom.kfauth.jwt.allowed: 5\n\
        wasmcustom.kfauth.jwt.denied: 3\n\
        wasmcustom.kfauth.jwt.denied.token_expired: 2\n\
        wasmcustom.kfauth.jwks.age_seconds.https___idp_test: 7\n\
        http.kfauth.downstream_rq_time: P0(nan,1) P25(nan,1.025)\n\
        listener.127.0.0.1_4000.worker_1.downstream_cx_total: 4\n\
        listener.127.0.0.1_4000.worker_0.downstream_cx_total: 6\n\
        listener.admin.main_thread.downstream_cx_total: 9\n";

    #[test]
    fn stats_are_found_by_dotted_suffix() {
        let stats = Stats::parse(STATS);
        assert_eq!(stats.get("kfauth.jwt.allowed"), Some(5));
        assert_eq!(stats.get("kfauth.jwt.denied"), Some(3));
        assert_eq!(stats.get("kfauth.jwt.denied.token_expired"), Some(2));
        assert_eq!(stats.get("jwt.denied.signature_invalid"), None);
        assert_eq!(stats.counter("jwt.denied.signature_invalid"), 0);
        assert_eq!(stats.get("wt.allowed"), None, "suffixes start at a dot");
        assert_eq!(
            stats.get("downstream_rq_time"),
            None,
            "histograms are skipped"
        );
        assert_eq!(stats.containing("kfauth.jwks").len(), 1);
        assert_eq!(stats.connections_per_worker(), vec![6, 4]);
    }

    #[test]
    fn prometheus_samples_are_found_by_underscored_suffix() {
        let text = "# TYPE kfauth_jwt_allowed counter\n\
            kfauth_jwt_allowed{} 5\n\
            envoy_wasmcustom_kfauth_jwt_denied 3\n\
            kfauth_jwt_denied_token_expired{} 2\n";
        assert_eq!(
            prometheus_samples(text, "kfauth.jwt.allowed"),
            vec![("kfauth_jwt_allowed{}".to_string(), 5.0)]
        );
        assert_eq!(prometheus_samples(text, "kfauth.jwt.denied").len(), 1);
        assert!(prometheus_samples(text, "kfauth.jwks.fetch_success").is_empty());
    }

    #[test]
    fn issuers_become_metric_name_suffixes() {
        assert_eq!(
            issuer_metric_suffix("https://idp.kfauth.test"),
            "https___idp_kfauth_test"
        );
        assert_eq!(
            issuer_metric_suffix("http://127.0.0.1:80/dex"),
            "http___127_0_0_1_80_dex"
        );
    }
}
