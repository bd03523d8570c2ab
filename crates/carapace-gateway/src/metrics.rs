//! `GET /metrics`: Prometheus text exposition of the gateway's counters.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Tool calls by tool and outcome (`ok` or the error code).
    pub calls: IntCounterVec,
    /// Tool call latency by tool.
    pub call_seconds: HistogramVec,
    /// HTTP responses by route and status.
    pub http_responses: IntCounterVec,
    /// Bytes of HTTP response bodies sent.
    pub http_bytes_sent: IntCounter,
    /// Bytes sent to chat channels by the `message` tool, by channel.
    pub channel_bytes_sent: IntCounterVec,
    /// Sandboxes alive (as reported by the tool backend).
    pub sandboxes_alive: IntGauge,
    /// Tool calls running now.
    pub in_flight: IntGauge,
    /// `exec` calls running now.
    pub execs_in_flight: IntGauge,
    /// Config reloads by result (`applied`, `rejected`).
    pub reloads: IntCounterVec,
    /// HTTP connections open now.
    pub connections_open: IntGauge,
    /// Connections closed at the connection cap, by how (`evicted`, `refused`).
    pub connections_shed: IntCounterVec,
    /// Model calls by `provider/model` and outcome (`ok` or the error code).
    pub model_calls: IntCounterVec,
    /// Model tokens by `provider/model` and kind (`input`, `output`).
    pub model_tokens: IntCounterVec,
    /// Model call latency by `provider/model`.
    pub model_call_seconds: HistogramVec,
    /// Inbound message events by channel and event (`accepted`, `dropped`, `answered`, …).
    pub inbound_events: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new(
                "carapace_tool_calls_total",
                "Tool calls by tool and outcome (ok, or the error code)",
            ),
            &["tool", "outcome"],
        )?;
        let call_seconds = HistogramVec::new(
            HistogramOpts::new("carapace_tool_call_duration_seconds", "Tool call latency").buckets(
                vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 120.0,
                ],
            ),
            &["tool"],
        )?;
        let http_responses = IntCounterVec::new(
            Opts::new(
                "carapace_http_responses_total",
                "HTTP responses by route and status",
            ),
            &["route", "status"],
        )?;
        let http_bytes_sent = IntCounter::new(
            "carapace_http_response_bytes_total",
            "Bytes of HTTP response bodies sent (bodies of known length)",
        )?;
        let channel_bytes_sent = IntCounterVec::new(
            Opts::new(
                "carapace_channel_bytes_sent_total",
                "Bytes of media sent to chat channels by the message tool",
            ),
            &["channel"],
        )?;
        let sandboxes_alive = IntGauge::new("carapace_sandboxes_alive", "Sandboxes alive")?;
        let in_flight = IntGauge::new("carapace_tool_calls_in_flight", "Tool calls running now")?;
        let execs_in_flight =
            IntGauge::new("carapace_exec_calls_in_flight", "exec calls running now")?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "carapace_config_reloads_total",
                "Config file reloads by result",
            ),
            &["result"],
        )?;
        let connections_open = IntGauge::new(
            "carapace_http_connections_open",
            "HTTP connections open now",
        )?;
        let connections_shed = IntCounterVec::new(
            Opts::new(
                "carapace_http_connections_shed_total",
                "Connections closed at the connection cap (evicted: an idle one made room; refused: the new one)",
            ),
            &["how"],
        )?;
        let model_calls = IntCounterVec::new(
            Opts::new(
                "carapace_model_calls_total",
                "Model calls by model and outcome (ok, or the error code)",
            ),
            &["model", "outcome"],
        )?;
        let model_tokens = IntCounterVec::new(
            Opts::new(
                "carapace_model_tokens_total",
                "Tokens reported by model providers, by model and kind (input, output)",
            ),
            &["model", "kind"],
        )?;
        let model_call_seconds = HistogramVec::new(
            HistogramOpts::new("carapace_model_call_duration_seconds", "Model call latency")
                .buckets(vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                ]),
            &["model"],
        )?;
        let inbound_events = IntCounterVec::new(
            Opts::new(
                "carapace_inbound_events_total",
                "Inbound chat messages by channel and what happened to them",
            ),
            &["channel", "event"],
        )?;
        registry.register(Box::new(model_calls.clone()))?;
        registry.register(Box::new(model_tokens.clone()))?;
        registry.register(Box::new(model_call_seconds.clone()))?;
        registry.register(Box::new(inbound_events.clone()))?;
        registry.register(Box::new(connections_open.clone()))?;
        registry.register(Box::new(connections_shed.clone()))?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(call_seconds.clone()))?;
        registry.register(Box::new(http_responses.clone()))?;
        registry.register(Box::new(http_bytes_sent.clone()))?;
        registry.register(Box::new(channel_bytes_sent.clone()))?;
        registry.register(Box::new(sandboxes_alive.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(execs_in_flight.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(Metrics {
            registry,
            calls,
            call_seconds,
            http_responses,
            http_bytes_sent,
            channel_bytes_sent,
            sandboxes_alive,
            in_flight,
            execs_in_flight,
            reloads,
            connections_open,
            connections_shed,
            model_calls,
            model_tokens,
            model_call_seconds,
            inbound_events,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_names() {
        let m = Metrics::new().unwrap();
        m.calls.with_label_values(&["read", "ok"]).inc();
        m.call_seconds.with_label_values(&["read"]).observe(0.002);
        m.sandboxes_alive.set(2);
        let t = m.render();
        assert!(
            t.contains("carapace_tool_calls_total{outcome=\"ok\",tool=\"read\"} 1"),
            "{t}"
        );
        assert!(t.contains("carapace_tool_call_duration_seconds_bucket"));
        assert!(t.contains("carapace_sandboxes_alive 2"));
    }
}
