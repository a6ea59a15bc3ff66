//! Trace context across NATS: a command's trace goes from the WebSocket frame through the
//! gateway, the commands service and the append, and — through the `traceparent` stored on the
//! commit — on to the projectors and the gateways' fan-out.
//!
//! Without an exporter configured (no `OTEL_*` variables) no OpenTelemetry layer is installed,
//! spans carry no trace context, and these functions do nothing.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C `traceparent` of the current span, if it belongs to a trace.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span `traceparent` names (ignored when absent or malformed).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else { return };
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // An error only means the span is disabled (no OpenTelemetry layer): nothing to join.
        span.set_parent(context).ok();
    }
}
