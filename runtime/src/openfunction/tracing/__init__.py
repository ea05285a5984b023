"""Tracing providers, each a built-in plugin named after it.

* `skywalking` (`openfunction.tracing.skywalking`): the Apache SkyWalking Python agent,
  reporting over gRPC to `pluginsTracing.provider.oapServer`, `sw8` propagation;
* `opentelemetry` (`openfunction.tracing.opentelemetry`): the OpenTelemetry SDK, exporting
  over OTLP, W3C `traceparent` / `tracestate` / `baggage` propagation.

Both produce the spans of OpenFunction's Go framework: one entry span per invocation and one
exit span per `ctx.send`. Nothing here is imported unless `pluginsTracing.enabled` is true.
"""
