//! Any bytes as an OTLP/HTTP JSON body: decoding and conversion to a span batch answer spans,
//! per-span rejections or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<ExportTraceServiceRequest>(data) {
        let _ = spanlake_collector::otlp::decode(&request);
    }
});
