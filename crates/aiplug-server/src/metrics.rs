//! `GET /metrics`: Prometheus text format. The host reports every hook and
//! model call through [`Observer`]; the HTTP layer counts requests.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use aiplug_host::models::{ChatResponse, ModelError};
use aiplug_host::Observer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Latency buckets: 50 µs to about 110 s, doubling. Covers a filter hook
/// (microseconds) and a local model's answer (tens of seconds) alike.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    plugin: String,
    hook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookOutcomeLabels {
    plugin: String,
    hook: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelOutcomeLabels {
    model: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    plugin: String,
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginOutcomeLabels {
    plugin: String,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The server's metrics. One per server, no global state.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<RouteLabels>,
    overhead_seconds: HistogramFamily<RouteLabels>,
    hook_calls: Family<HookOutcomeLabels, Counter>,
    hook_seconds: HistogramFamily<HookLabels>,
    model_calls: Family<ModelOutcomeLabels, Counter>,
    model_seconds: HistogramFamily<ModelLabels>,
    tokens_in: Family<ModelLabels, Counter>,
    tokens_out: Family<ModelLabels, Counter>,
    cache_hit_tokens: Family<ModelLabels, Counter>,
    reloads: Family<PluginOutcomeLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    queue_seconds: HistogramFamily<PluginLabels>,
    in_flight: Family<PluginLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every series (names prefixed `aiplug_`).
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("aiplug");
        let metrics = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_buckets),
            overhead_seconds: Family::new_with_constructor(latency_buckets),
            hook_calls: Family::default(),
            hook_seconds: Family::new_with_constructor(latency_buckets),
            model_calls: Family::default(),
            model_seconds: Family::new_with_constructor(latency_buckets),
            tokens_in: Family::default(),
            tokens_out: Family::default(),
            cache_hit_tokens: Family::default(),
            reloads: Family::default(),
            refusals: Family::default(),
            queue_seconds: Family::new_with_constructor(latency_buckets),
            in_flight: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route (streams: until the last byte)",
            metrics.request_seconds.clone(),
        );
        registry.register(
            "gateway_overhead_seconds",
            "Time a request spent in the gateway outside model calls",
            metrics.overhead_seconds.clone(),
        );
        registry.register(
            "plugin_calls",
            "Plugin hook calls by outcome",
            metrics.hook_calls.clone(),
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Plugin hook latency",
            metrics.hook_seconds.clone(),
        );
        registry.register(
            "model_calls",
            "Model calls by outcome",
            metrics.model_calls.clone(),
        );
        registry.register(
            "model_call_duration_seconds",
            "Model call latency",
            metrics.model_seconds.clone(),
        );
        registry.register("tokens_in", "Prompt tokens", metrics.tokens_in.clone());
        registry.register("tokens_out", "Generated tokens", metrics.tokens_out.clone());
        registry.register(
            "cache_hit_tokens",
            "Prompt tokens served from the provider's context cache",
            metrics.cache_hit_tokens.clone(),
        );
        registry.register(
            "plugin_reloads",
            "Plugin reloads by outcome",
            metrics.reloads.clone(),
        );
        registry.register(
            "plugin_refusals",
            "Plugin calls refused by a [limits] entry, by limit",
            metrics.refusals.clone(),
        );
        registry.register(
            "plugin_queue_wait_seconds",
            "Time calls waited for a place under max_concurrency (only calls that waited)",
            metrics.queue_seconds.clone(),
        );
        registry.register(
            "plugin_in_flight",
            "Calls running in each plugin (all its versions) at scrape time",
            metrics.in_flight.clone(),
        );
        Arc::new(Metrics { registry, ..metrics })
    }

    /// Counts one HTTP request.
    pub fn request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Records the gateway's own time for one request.
    pub fn overhead(&self, route: &str, overhead: Duration) {
        self.overhead_seconds
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(overhead.as_secs_f64());
    }

    /// Sets the in-flight gauge of each plugin (called at scrape time).
    pub fn set_in_flight(&self, plugins: &[aiplug_host::PluginInfo]) {
        let mut totals: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
        for plugin in plugins {
            *totals.entry(plugin.id.as_str()).or_default() +=
                i64::try_from(plugin.in_flight).unwrap_or(i64::MAX);
        }
        for (plugin, count) in totals {
            self.in_flight
                .get_or_create(&PluginLabels {
                    plugin: plugin.to_string(),
                })
                .set(count);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            let _ = writeln!(out, "# encoding the metrics failed");
        }
        out
    }
}

impl Observer for Metrics {
    fn hook_call(&self, plugin: &str, hook: &'static str, elapsed: Duration, outcome: &'static str) {
        self.hook_calls
            .get_or_create(&HookOutcomeLabels {
                plugin: plugin.to_string(),
                hook: hook.to_string(),
                outcome,
            })
            .inc();
        self.hook_seconds
            .get_or_create(&HookLabels {
                plugin: plugin.to_string(),
                hook: hook.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    fn model_call(&self, model: &str, elapsed: Duration, result: Result<&ChatResponse, &ModelError>) {
        let labels = ModelLabels {
            model: model.to_string(),
        };
        self.model_calls
            .get_or_create(&ModelOutcomeLabels {
                model: model.to_string(),
                outcome: if result.is_ok() { "ok" } else { "error" },
            })
            .inc();
        self.model_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(usage) = result.ok().and_then(|r| r.usage.as_ref()) {
            self.tokens_in.get_or_create(&labels).inc_by(usage.prompt_tokens);
            self.tokens_out
                .get_or_create(&labels)
                .inc_by(usage.completion_tokens);
            if let Some(hit) = usage.prompt_cache_hit_tokens {
                self.cache_hit_tokens.get_or_create(&labels).inc_by(hit);
            }
        }
    }

    fn refused(&self, plugin: &str, limit: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                plugin: plugin.to_string(),
                limit,
            })
            .inc();
    }

    fn queued(&self, plugin: &str, waited: Duration) {
        self.queue_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_string(),
            })
            .observe(waited.as_secs_f64());
    }

    fn reload(&self, plugin: &str, ok: bool) {
        self.reloads
            .get_or_create(&PluginOutcomeLabels {
                plugin: plugin.to_string(),
                outcome: if ok { "ok" } else { "refused" },
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::new();
        metrics.request("/v1/chat/completions", "POST", 200, Duration::from_millis(3));
        metrics.hook_call("guard", "on_request", Duration::from_micros(20), "ok");
        metrics.refused("guard", "max_concurrency");
        let response = ChatResponse {
            usage: Some(aiplug_host::models::Usage {
                prompt_tokens: 11,
                completion_tokens: 4,
                prompt_cache_hit_tokens: Some(8),
                ..Default::default()
            }),
            ..Default::default()
        };
        metrics.model_call("m", Duration::from_millis(2), Ok(&response));
        let text = metrics.render();
        for expected in [
            "aiplug_http_requests_total{route=\"/v1/chat/completions\",method=\"POST\",status=\"200\"} 1",
            "aiplug_plugin_calls_total{plugin=\"guard\",hook=\"on_request\",outcome=\"ok\"} 1",
            "aiplug_tokens_in_total{model=\"m\"} 11",
            "aiplug_tokens_out_total{model=\"m\"} 4",
            "aiplug_cache_hit_tokens_total{model=\"m\"} 8",
            "aiplug_model_call_duration_seconds_count{model=\"m\"} 1",
            "aiplug_plugin_refusals_total{plugin=\"guard\",limit=\"max_concurrency\"} 1",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
