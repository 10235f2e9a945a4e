//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::{Error, Receiver, TENANT_HEADER, tenant_from_header};

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Decode { .. } | Error::InvalidTenant(_) => Status::invalid_argument(message),
            Error::TooLarge { .. } => Status::resource_exhausted(message),
            // UNAVAILABLE is the code OTLP clients retry with backoff.
            Error::Overloaded { .. } | Error::ShuttingDown => Status::unavailable(message),
            Error::UnsupportedContentType(_) | Error::UnsupportedEncoding(_) => {
                Status::invalid_argument(message)
            }
            Error::Storage(_) | Error::Internal(_) => Status::internal(message),
        }
    }
}

struct TraceGrpc {
    receiver: Receiver,
}

#[tonic::async_trait]
impl TraceService for TraceGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant =
            tenant_from_header(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))?;
        let body = request.into_inner();
        let response = self.receiver.export(tenant, move || Ok(body)).await?;
        Ok(Response::new(response))
    }
}

/// The gRPC service, accepting gzip- and zstd-compressed requests of up to `max_message_bytes`.
pub fn service(
    receiver: Receiver,
    max_message_bytes: usize,
) -> TraceServiceServer<impl TraceService> {
    TraceServiceServer::new(TraceGrpc { receiver })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes)
}
