"""Exports a small call chain with the OpenTelemetry Python SDK, over OTLP/gRPC and OTLP/HTTP.

Usage: export_sdk.py GRPC_ENDPOINT HTTP_TRACES_URL
"""

import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

grpc_endpoint, http_url = sys.argv[1], sys.argv[2]

for service, exporter in [
    ("py-grpc", GrpcExporter(endpoint=grpc_endpoint, insecure=True)),
    ("py-http", HttpExporter(endpoint=http_url)),
]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("spanlake-python-e2e")
    for i in range(5):
        with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.route", "/items")
            root.set_attribute("item.count", i)
            with tracer.start_as_current_span("query", kind=SpanKind.CLIENT) as child:
                child.add_event("cache.miss", {"key": f"k{i}"})
                child.set_status(Status(StatusCode.ERROR, "timeout"))
    if not provider.force_flush(10_000):
        sys.exit(f"{service}: flush timed out")
    provider.shutdown()
print("exported")
