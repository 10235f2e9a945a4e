//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{Error, Receiver, TENANT_HEADER, tenant_from_header};

/// The gRPC service name of OTLP trace export.
const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
/// The path of its one method.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

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

/// The OTLP/gRPC trace service, accepting gzip- and zstd-compressed requests of up to
/// `max_message_bytes`.
///
/// Written out rather than generated because the generated server decodes the request inside
/// tonic, which answers a malformed message with `INTERNAL`. Here the message reaches the
/// receiver as bytes and is decoded with the spans on a blocking thread, so a malformed one
/// gets `INVALID_ARGUMENT` naming what was wrong, as the OTLP specification asks and as
/// OTLP/HTTP answers 400.
#[derive(Clone)]
pub struct TraceGrpcService {
    receiver: Receiver,
    max_message_bytes: usize,
}

/// The gRPC service for `receiver`.
pub fn service(receiver: Receiver, max_message_bytes: usize) -> TraceGrpcService {
    TraceGrpcService {
        receiver,
        max_message_bytes,
    }
}

impl NamedService for TraceGrpcService {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for TraceGrpcService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                Ok(
                    Status::unimplemented("unknown method: the trace service has only Export")
                        .into_http(),
                )
            });
        }
        let export = Export(Arc::new(self.receiver.clone()));
        let max_message_bytes = self.max_message_bytes;
        Box::pin(async move {
            let mut compression = EnabledCompressionEncodings::default();
            compression.enable(CompressionEncoding::Gzip);
            compression.enable(CompressionEncoding::Zstd);
            let mut send = EnabledCompressionEncodings::default();
            send.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawRequestCodec)
                .apply_compression_config(compression, send)
                .apply_max_message_size_config(Some(max_message_bytes), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

struct Export(Arc<Receiver>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = Arc::clone(&self.0);
        Box::pin(async move {
            let started = std::time::Instant::now();
            let bytes = request.get_ref().len();
            let result = async {
                let tenant = tenant_from_header(
                    request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()),
                )?;
                let body = request.into_inner();
                receiver
                    .export("grpc", tenant, move || crate::decode_protobuf(&body))
                    .await
            }
            .await;
            crate::observe_request("grpc", started, bytes, result.as_ref().err());
            Ok(Response::new(result?))
        })
    }
}

/// Takes the request message as bytes (decoded later, by the receiver) and encodes the
/// response with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

#[derive(Debug, Clone, Copy)]
struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

#[derive(Debug, Clone, Copy)]
struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
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
