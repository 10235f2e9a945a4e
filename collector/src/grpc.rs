//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{Error, Receiver, TENANT_HEADER, tenant_from_header};

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Decode { .. } | Error::InvalidTenant(_) => Status::invalid_argument(message),
            Error::TooLarge { .. } | Error::TooManySpans { .. } => {
                Status::resource_exhausted(message)
            }
            // UNAVAILABLE is the code OTLP clients retry; RetryInfo tells them when, as the
            // OTLP specification asks of a server that wants a client to slow down.
            Error::Overloaded { retry_after } | Error::DiskFull { retry_after } => {
                Status::with_error_details(
                    Code::Unavailable,
                    message,
                    ErrorDetails::with_retry_info(Some(retry_after)),
                )
            }
            Error::ShuttingDown => Status::unavailable(message),
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
        let started = std::time::Instant::now();
        let bytes = prost::Message::encoded_len(request.get_ref());
        let result = async {
            let tenant =
                tenant_from_header(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))?;
            let body = request.into_inner();
            self.receiver.export("grpc", tenant, move || Ok(body)).await
        }
        .await;
        crate::observe_request("grpc", started, bytes, result.as_ref().err());
        Ok(Response::new(result?))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn overload_tells_the_client_when_to_retry() {
        let status = Status::from(Error::Overloaded {
            retry_after: Duration::from_secs(2),
        });
        assert_eq!(status.code(), Code::Unavailable);
        let retry = status.get_details_retry_info().expect("RetryInfo detail");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(2)));
        assert_eq!(Status::from(Error::ShuttingDown).code(), Code::Unavailable);
    }
}
