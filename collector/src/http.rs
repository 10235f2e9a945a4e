//! OTLP/HTTP: `POST /v1/traces` with `application/x-protobuf` or `application/json` bodies,
//! optionally gzip-compressed. Answers in the request's encoding, as the OTLP specification asks:
//! an `ExportTraceServiceResponse` on success, a `google.rpc.Status` on failure.

use std::io::Read;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::{Error, Receiver, Result, TENANT_HEADER, tenant_from_header};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Limits of the HTTP receiver.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest body accepted as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body accepted after decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone)]
struct AppState {
    receiver: Receiver,
    limits: HttpLimits,
}

/// The router serving `POST /v1/traces`.
pub fn router(receiver: Receiver, limits: HttpLimits) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        // The body limit is checked here, so axum's own default (2 MiB) must not cut first.
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(AppState { receiver, limits })
}

fn format_of(headers: &HeaderMap) -> Result<Format, Error> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF | "application/protobuf" => Ok(Format::Protobuf),
        JSON => Ok(Format::Json),
        _ => Err(Error::UnsupportedContentType(raw.to_string())),
    }
}

fn decompress(headers: &HeaderMap, body: Bytes, limits: HttpLimits) -> Result<Bytes> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&body[..]), "gzip", limits),
        "zstd" => {
            let decoder =
                zstd::stream::read::Decoder::new(&body[..]).map_err(|e| Error::Decode {
                    format: "zstd",
                    reason: e.to_string(),
                })?;
            inflate(decoder, "zstd", limits)
        }
        other => Err(Error::UnsupportedEncoding(other.to_string())),
    }
}

/// Decompresses, reading at most one byte past the limit, so a bomb costs no more than the
/// limit.
fn inflate(reader: impl Read, format: &'static str, limits: HttpLimits) -> Result<Bytes> {
    let mut out = Vec::new();
    let limit = limits.max_decompressed_bytes as u64;
    reader
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decode {
            format,
            reason: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            limit: limits.max_decompressed_bytes,
            when: " after decompression",
        });
    }
    Ok(out.into())
}

fn decode_body(format: Format, body: &[u8]) -> Result<ExportTraceServiceRequest> {
    match format {
        Format::Protobuf => crate::decode_protobuf(body),
        Format::Json => serde_json::from_slice(body).map_err(|e| Error::Decode {
            format: "OTLP/JSON ExportTraceServiceRequest",
            reason: e.to_string(),
        }),
    }
}

async fn export(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let bytes = body.len();
    // Errors before the format is known are answered in protobuf, the OTLP/HTTP default.
    let format = match format_of(&headers) {
        Ok(f) => f,
        Err(e) => {
            crate::observe_request("http", started, bytes, Some(&e));
            return error_response(Format::Protobuf, e);
        }
    };
    let result = async {
        let tenant = tenant_from_header(headers.get(TENANT_HEADER).map(HeaderValue::as_bytes))?;
        if body.len() > state.limits.max_body_bytes {
            return Err(Error::TooLarge {
                limit: state.limits.max_body_bytes,
                when: "",
            });
        }
        let limits = state.limits;
        state
            .receiver
            .export("http", tenant, move || {
                let body = decompress(&headers, body, limits)?;
                decode_body(format, &body)
            })
            .await
    }
    .await;
    crate::observe_request("http", started, bytes, result.as_ref().err());
    match result {
        Ok(response) => success_response(format, &response),
        Err(e) => error_response(format, e),
    }
}

fn success_response(format: Format, response: &ExportTraceServiceResponse) -> Response {
    let body = match format {
        Format::Protobuf => response.encode_to_vec(),
        Format::Json => match &response.partial_success {
            None => b"{}".to_vec(),
            Some(p) => serde_json::to_vec(&serde_json::json!({
                "partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }
            }))
            .unwrap_or_default(),
        },
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}

fn error_response(format: Format, error: Error) -> Response {
    let (status, grpc_code, retry_after) = match &error {
        Error::Decode { .. } | Error::InvalidTenant(_) => (StatusCode::BAD_REQUEST, 3, None),
        Error::UnsupportedContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, None),
        Error::UnsupportedEncoding(_) => (StatusCode::BAD_REQUEST, 3, None),
        Error::TooLarge { .. } | Error::TooManySpans { .. } => {
            (StatusCode::PAYLOAD_TOO_LARGE, 8, None)
        }
        Error::Overloaded { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            8,
            Some(retry_after.as_secs().max(1)),
        ),
        Error::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, 14, Some(1)),
        Error::DiskFull { retry_after } => (
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            Some(retry_after.as_secs().max(1)),
        ),
        Error::Storage(_) | Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 13, None),
    };
    let message = error.to_string();
    if status.is_server_error() {
        tracing::error!(%message, "otlp/http export failed");
    }
    let body = match format {
        Format::Protobuf => RpcStatus {
            code: grpc_code,
            message,
        }
        .encode_to_vec(),
        Format::Json => serde_json::to_vec(&serde_json::json!({
            "code": grpc_code,
            "message": message,
        }))
        .unwrap_or_default(),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
