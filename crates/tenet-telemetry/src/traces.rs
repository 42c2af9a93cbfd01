//! Traces (cargo feature `otlp`): tracing spans exported to an OpenTelemetry
//! collector over OTLP/gRPC, with the W3C trace context of incoming
//! requests (`traceparent`, `tracestate`) as their parent. The spans
//! themselves (request, decision, fetch, compile, activation, with the
//! tenant as a field) are the crates' own `tracing` spans; this module only
//! builds the export layer and reads the incoming context. It never
//! blocks a decision: spans are batched and exported on their own task,
//! and dropped when the batch queue is full.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's OTLP/gRPC endpoint (`http://127.0.0.1:4317`).
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// How often a batch is sent.
    pub export_interval: Duration,
    /// Most spans waiting for export; more are dropped.
    pub max_queue: usize,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://127.0.0.1:4317".into(),
            service_name: "tenet".into(),
            export_interval: Duration::from_secs(5),
            max_queue: 2048,
        }
    }
}

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The exporter could not be built (a bad endpoint).
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// The export pipeline; [`Traces::shutdown`] flushes what is batched.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Builds the exporter (inside a tokio runtime) and the layer to add
    /// to the subscriber.
    pub fn start<S>(
        config: &OtlpConfig,
    ) -> Result<(Self, impl tracing_subscriber::Layer<S>), TraceError>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let exporter = SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .build()
            .map_err(|e| TraceError::Exporter(e.to_string()))?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(config.export_interval)
                    .with_max_queue_size(config.max_queue.max(1))
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("tenet");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        Ok((Self { provider }, layer))
    }

    /// Exports what is batched and stops.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "exporting the last spans failed");
        }
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the trace context in `headers` (W3C
/// `traceparent`/`tracestate`), when there is one.
pub fn set_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    if headers.get("traceparent").is_none() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(context);
}
