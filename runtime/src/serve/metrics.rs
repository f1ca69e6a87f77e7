//! Prometheus text exposition (format 0.0.4) of the server's counters, gauges and histograms,
//! written by hand: a dozen series do not need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Request latency buckets (seconds).
const LATENCY_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Texts per encoder batch.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Encoder batch duration buckets (seconds).
const BATCH_SECONDS_BOUNDS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// A cumulative histogram with fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, plus +Inf.
    counts: Vec<AtomicU64>,
    /// Sum of the observations, in millionths (integer atomics; sub-microsecond precision is noise).
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(), sum_micro: AtomicU64::new(0) }
    }

    pub fn observe(&self, v: f64) {
        let k = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.counts[k].fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (k, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[k].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}");
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// Everything `GET /metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    /// (route, status) -> count
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// route -> latency histogram
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// Texts per encoder batch.
    pub batch_texts: Histogram,
    /// Seconds per encoder batch.
    pub batch_seconds: Histogram,
    /// Texts (or labels being encoded) waiting in the queue, and the jobs holding them.
    pub queue_texts: AtomicI64,
    /// Jobs waiting in the queue.
    pub queue_jobs: AtomicI64,
    /// Requests being answered.
    pub in_flight: AtomicI64,
    /// Texts classified since start.
    pub texts_classified: AtomicU64,
    /// Texts embedded since start.
    pub texts_embedded: AtomicU64,
    /// Label sets found in the cache.
    pub label_cache_hits: AtomicU64,
    /// Label sets encoded because they were not in the cache.
    pub label_cache_misses: AtomicU64,
    /// Labels held by the cache.
    pub label_cache_labels: AtomicI64,
    /// Label sets held by the cache.
    pub label_cache_sets: AtomicI64,
    /// Requests answered 503 because the queue was full.
    pub rejected_queue_full: AtomicU64,
    /// Requests refused 401 without an `Authorization: Bearer` key.
    pub auth_missing: AtomicU64,
    /// Requests refused 401 with a key that is not one of the server's.
    pub auth_invalid: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batch_texts: Histogram::new(BATCH_BOUNDS),
            batch_seconds: Histogram::new(BATCH_SECONDS_BOUNDS),
            queue_texts: AtomicI64::new(0),
            queue_jobs: AtomicI64::new(0),
            in_flight: AtomicI64::new(0),
            texts_classified: AtomicU64::new(0),
            texts_embedded: AtomicU64::new(0),
            label_cache_hits: AtomicU64::new(0),
            label_cache_misses: AtomicU64::new(0),
            label_cache_labels: AtomicI64::new(0),
            label_cache_sets: AtomicI64::new(0),
            rejected_queue_full: AtomicU64::new(0),
            auth_missing: AtomicU64::new(0),
            auth_invalid: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One finished request. `route` is the matched route (or `other`), so label values stay few.
    pub fn record_request(&self, route: &'static str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route, status)).or_insert(0) += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry(route).or_insert_with(|| Histogram::new(LATENCY_BOUNDS)).observe(seconds);
        }
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        out.push_str("# HELP zsc_requests_total HTTP requests by route and status.\n# TYPE zsc_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(out, "zsc_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP zsc_request_duration_seconds Request latency by route.\n# TYPE zsc_request_duration_seconds histogram\n",
        );
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                h.render(&mut out, "zsc_request_duration_seconds", &format!("route=\"{route}\""));
            }
        }
        out.push_str("# HELP zsc_batch_texts Texts per encoder batch (dynamic batching across requests).\n# TYPE zsc_batch_texts histogram\n");
        self.batch_texts.render(&mut out, "zsc_batch_texts", "");
        out.push_str("# HELP zsc_batch_duration_seconds Time to encode and score one batch.\n# TYPE zsc_batch_duration_seconds histogram\n");
        self.batch_seconds.render(&mut out, "zsc_batch_duration_seconds", "");
        gauge(
            &mut out,
            "zsc_queue_depth",
            "Texts (and labels to encode) waiting for the encoder.",
            self.queue_texts.load(Ordering::Relaxed),
        );
        gauge(&mut out, "zsc_queue_jobs", "Requests waiting for the encoder.", self.queue_jobs.load(Ordering::Relaxed));
        gauge(&mut out, "zsc_requests_in_flight", "Requests being handled.", self.in_flight.load(Ordering::Relaxed));
        counter(&mut out, "zsc_texts_classified_total", "Texts classified.", self.texts_classified.load(Ordering::Relaxed));
        counter(&mut out, "zsc_texts_embedded_total", "Texts embedded.", self.texts_embedded.load(Ordering::Relaxed));
        counter(
            &mut out,
            "zsc_label_cache_hits_total",
            "Label sets found encoded in the LRU cache.",
            self.label_cache_hits.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "zsc_label_cache_misses_total",
            "Label sets that had to be encoded.",
            self.label_cache_misses.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "zsc_label_cache_labels",
            "Labels held by the label-set cache.",
            self.label_cache_labels.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "zsc_label_cache_sets",
            "Label sets held by the label-set cache.",
            self.label_cache_sets.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "zsc_rejected_queue_full_total",
            "Requests answered 503 because the queue was full.",
            self.rejected_queue_full.load(Ordering::Relaxed),
        );
        out.push_str("# HELP zsc_auth_failures_total Requests refused 401, by reason.\n# TYPE zsc_auth_failures_total counter\n");
        for (reason, n) in [("missing", &self.auth_missing), ("invalid", &self.auth_invalid)] {
            let _ = writeln!(out, "zsc_auth_failures_total{{reason=\"{reason}\"}} {}", n.load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record_request("/v1/classify", 200, 0.003);
        m.record_request("/v1/classify", 200, 0.2);
        m.record_request("/v1/classify", 413, 0.0001);
        m.batch_texts.observe(3.0);
        let text = m.render();
        assert!(text.contains("zsc_requests_total{route=\"/v1/classify\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("zsc_requests_total{route=\"/v1/classify\",status=\"413\"} 1"));
        // cumulative buckets: 0.0001 and 0.003 are <= 0.005, all three <= 0.25
        assert!(text.contains("zsc_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("zsc_request_duration_seconds_bucket{route=\"/v1/classify\",le=\"0.25\"} 3"));
        assert!(text.contains("zsc_request_duration_seconds_count{route=\"/v1/classify\"} 3"));
        assert!(text.contains("zsc_batch_texts_bucket{le=\"2\"} 0") && text.contains("zsc_batch_texts_bucket{le=\"4\"} 1"));
        assert!(text.contains("zsc_batch_texts_sum 3\n"));
        assert!(text.contains("# TYPE zsc_queue_depth gauge\nzsc_queue_depth 0"));
        // every non-comment line is `name{labels} value` or `name value`
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
