//! A Tempo-compatible HTTP API under `/tempo`, so Grafana's Tempo data source (URL
//! `http://HOST:16686/tempo`) searches and opens Spanlake traces unchanged.
//!
//! - `/api/search`: a TraceQL `q=` ([`crate::traceql`]) or `tags=` logfmt ([`filter`],
//!   [`query::search`]), answered as Tempo's `SearchResponse` with each trace's summary and
//!   spansets ([`response`]).
//! - `/api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{name}/values`,
//!   `/api/v2/search/tag/{name}/values`: attribute names and values of recent spans.
//! - `/api/traces/{id}`, `/api/v2/traces/{id}`: the trace as OTLP ([`crate::otlp_out`]), in
//!   JSON or, when asked with `Accept: application/protobuf` as Grafana does, protobuf.
//! - `/api/metrics/query_range`: TraceQL metrics (`rate()`, `count_over_time()`,
//!   `quantile_over_time(...)`, ... `by (...)`) as Tempo's `QueryRangeResponse`.
//! - `/api/echo`, `/ready`, `/api/status/buildinfo` for health checks and feature detection.
//!
//! Times (`start`, `end`) are UNIX seconds as Tempo takes them (other units are read too); the
//! tenant comes from `X-Scope-OrgID`. Errors are plain text with the status Tempo would send.

pub mod filter;
pub mod query;
pub mod response;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prost::Message;
use serde::Serialize;

use self::filter::{SpanFilter, parse_duration_ns};
use self::query::{AttributeScope, SearchRequest, TagSource};
use self::response::{
    TagNames, TagScope, TagScopes, TagValues, Trace, TraceByIdJson, TraceByIdResponse, TraceJson,
    TraceResourceSpans, TypedTagValues,
};
use crate::api::params::{param, parse_limit, parse_tags, window};
use crate::api::tenant;
use crate::api::traces::{DEFAULT_LOOKBACK, MAX_SEARCH_LIMIT};
use crate::records::span_records;
use crate::traceql;
use crate::traces::{Traces, Window};
use crate::{Error, otlp_out};

/// The Tempo release whose API this mirrors, reported by `buildinfo` so that clients that
/// gate features on the version enable them.
pub const TEMPO_VERSION: &str = "2.6.0";
/// Spans per spanset when `spss` is not given, as in Tempo.
pub const DEFAULT_SPANS_PER_SET: usize = 3;
/// Most spans per spanset; `spss=0` asks for this many.
pub const MAX_SPANS_PER_SET: usize = 1000;
/// Attribute names or values listed when `limit` is not given.
pub const DEFAULT_TAG_LIMIT: usize = 1000;
pub const MAX_TAG_LIMIT: usize = 10_000;
/// The intrinsics that can be searched, listed by `/api/v2/search/tags`.
pub const INTRINSIC_TAGS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];

const PROTOBUF: &str = "application/protobuf";

/// The Tempo routes, mounted under `/tempo`.
pub fn router(traces: Traces) -> Router {
    let api = Router::new()
        .route("/api/echo", get(echo))
        .route("/ready", get(ready))
        .route("/api/status/buildinfo", get(buildinfo))
        .route("/api/search", get(search))
        .route("/api/search/tags", get(tags))
        .route("/api/v2/search/tags", get(tags_v2))
        .route("/api/search/tag/{name}/values", get(tag_values))
        .route("/api/v2/search/tag/{name}/values", get(tag_values_v2))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/v2/traces/{trace_id}", get(trace_v2))
        .route("/api/metrics/query_range", get(query_range))
        .with_state(traces);
    Router::new().nest("/tempo", api)
}

/// An error as Tempo answers it: the status the rest of the API would use, the message as
/// plain text.
#[derive(Debug)]
pub struct TempoError(Error);

impl From<Error> for TempoError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        let (message, headers) = (self.0.to_string(), self.0.headers());
        // The shared mapping chooses the status and logs server errors.
        let status = self.0.into_response().status();
        (status, headers, message).into_response()
    }
}

type Reply = Result<Response, TempoError>;
type Params = Query<Vec<(String, String)>>;

/// `start`/`end` (Tempo sends `0` for "not given"), by default the hour before now.
fn window_of(params: &[(String, String)]) -> crate::Result<Window> {
    let given = |name| param(params, name).filter(|v| v.trim() != "0");
    window(given("start"), given("end"), None, DEFAULT_LOOKBACK)
}

/// The `q=` of the tag endpoints narrows the spans looked at; Grafana sends it while the user
/// is still typing, so a query that does not parse means no narrowing rather than an error.
fn lenient_filter(params: &[(String, String)]) -> SpanFilter {
    param(params, "q")
        .and_then(|q| SpanFilter::from_traceql(q).ok())
        .unwrap_or_default()
}

fn tag_limit(params: &[(String, String)]) -> crate::Result<usize> {
    parse_limit(
        "limit",
        param(params, "limit"),
        DEFAULT_TAG_LIMIT,
        MAX_TAG_LIMIT,
    )
}

async fn echo() -> &'static str {
    "echo"
}

async fn ready() -> &'static str {
    "ready"
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: String,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
    spanlake_version: &'static str,
}

async fn buildinfo() -> Json<BuildInfo> {
    let spanlake = env!("CARGO_PKG_VERSION");
    Json(BuildInfo {
        version: TEMPO_VERSION,
        revision: format!("spanlake-{spanlake}"),
        branch: "spanlake",
        build_user: "spanlake",
        build_date: "",
        go_version: "none (spanlake is written in Rust)",
        spanlake_version: spanlake,
    })
}

/// A search as Tempo's query parameters ask for it: `tags=` (or nothing) or TraceQL `q=`.
#[derive(Debug)]
enum Search {
    Tags(SearchRequest),
    TraceQl(traceql::search::SearchRequest),
}

/// The search Tempo's query parameters ask for.
fn search_request(params: &[(String, String)]) -> crate::Result<Search> {
    let q = param(params, "q").filter(|q| !q.trim().is_empty());
    if q.is_some() && param(params, "tags").is_some() {
        return Err(Error::BadRequest(
            "can't specify tags and q in the same query".into(),
        ));
    }
    let duration = |name| {
        param(params, name)
            .map(|v| {
                parse_duration_ns(v).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "{name}={v:?} is not a duration: use Go syntax such as 100ms, 1.5s or 1m"
                    ))
                })
            })
            .transpose()
    };
    let (min, max) = (duration("minDuration")?, duration("maxDuration")?);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(Error::BadRequest(
            "maxDuration must be greater than minDuration".into(),
        ));
    }
    let spans_per_set = match param(params, "spss") {
        Some("0") => MAX_SPANS_PER_SET,
        spss => parse_limit("spss", spss, DEFAULT_SPANS_PER_SET, MAX_SPANS_PER_SET)?,
    };
    let window = window_of(params)?;
    let limit = parse_limit("limit", param(params, "limit"), 20, MAX_SEARCH_LIMIT)?;
    if let Some(q) = q {
        let mut request = traceql::search::SearchRequest::parse(q, window, limit, spans_per_set)?;
        // As in Tempo, minDuration and maxDuration bound the trace's duration.
        if let Some(stage) = trace_duration_stage(min, max) {
            request.query.pipeline.stages.push(stage);
        }
        return Ok(Search::TraceQl(request));
    }
    let filter = match param(params, "tags") {
        Some(tags) => SpanFilter::from_tags(&parse_tags("tags", tags)?)?,
        None => SpanFilter::default(),
    };
    Ok(Search::Tags(SearchRequest {
        filter: filter.with_durations(min, max),
        window,
        limit,
        spans_per_set,
    }))
}

/// `{ traceDuration >= min && traceDuration <= max }`, for the bounds given.
fn trace_duration_stage(min: Option<i64>, max: Option<i64>) -> Option<traceql::Stage> {
    use traceql::{BinaryOp, Field, FieldExpr, Intrinsic, Literal};
    let bound = |op, nanos| FieldExpr::Binary {
        op,
        lhs: Box::new(FieldExpr::Field(Field::Intrinsic(Intrinsic::TraceDuration))),
        rhs: Box::new(FieldExpr::Literal(Literal::Duration { nanos })),
    };
    let conditions: Vec<FieldExpr> = [
        min.map(|n| bound(BinaryOp::Gte, n)),
        max.map(|n| bound(BinaryOp::Lte, n)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let expr = conditions.into_iter().reduce(|a, b| FieldExpr::Binary {
        op: BinaryOp::And,
        lhs: Box::new(a),
        rhs: Box::new(b),
    })?;
    Some(traceql::Stage::Spanset(traceql::SpansetExpr::Filter(
        traceql::SpansetFilter { expr: Some(expr) },
    )))
}

async fn search(State(traces): State<Traces>, Query(params): Params, headers: HeaderMap) -> Reply {
    let tenant = tenant(&headers)?;
    match search_request(&params)? {
        Search::Tags(request) => {
            let found = query::search(&traces, &tenant, &request).await?;
            Ok(Json(response::search(found, &request.filter)).into_response())
        }
        Search::TraceQl(request) => {
            let found = traceql::search::search(&traces, &tenant, &request).await?;
            Ok(Json(response::traceql_search(found)).into_response())
        }
    }
}

/// `/api/metrics/query_range?q=&start=&end=&step=`: a TraceQL metrics query as time series.
async fn query_range(
    State(traces): State<Traces>,
    Query(params): Params,
    headers: HeaderMap,
) -> Reply {
    let tenant = tenant(&headers)?;
    let q = param(params.as_slice(), "q")
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| Error::BadRequest("q: a TraceQL metrics query is required".into()))?;
    let step_ms = param(params.as_slice(), "step")
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::api::params::parse_duration("step", s, std::time::Duration::from_secs(1))
                .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        })
        .transpose()?;
    let request = traceql::metrics::RangeRequest::parse(q, window_of(&params)?, step_ms)?;
    let (series, bytes) = traceql::metrics::query_range(&traces, &tenant, &request).await?;
    Ok(Json(response::query_range(series, bytes)).into_response())
}

/// The scopes `/api/v2/search/tags?scope=` asks for; event, link and instrumentation
/// attributes are not indexed yet and list nothing.
fn scopes(scope: Option<&str>) -> crate::Result<&'static [&'static str]> {
    Ok(match scope.unwrap_or("") {
        "" | "none" | "all" => &["resource", "span", "intrinsic"],
        "resource" => &["resource"],
        "span" => &["span"],
        "intrinsic" => &["intrinsic"],
        "event" | "link" | "instrumentation" => &[],
        other => {
            return Err(Error::BadRequest(format!(
                "invalid scope: {other} (use resource, span, intrinsic or none)"
            )));
        }
    })
}

async fn tags(State(traces): State<Traces>, Query(params): Params, headers: HeaderMap) -> Reply {
    let tenant = tenant(&headers)?;
    let (window, filter, limit) = (
        window_of(&params)?,
        lenient_filter(&params),
        tag_limit(&params)?,
    );
    let (span, resource) = futures::try_join!(
        query::attribute_names(
            &traces,
            &tenant,
            AttributeScope::Span,
            window,
            &filter,
            limit
        ),
        query::attribute_names(
            &traces,
            &tenant,
            AttributeScope::Resource,
            window,
            &filter,
            limit
        ),
    )?;
    let mut tag_names: Vec<String> = span.into_iter().chain(resource).collect();
    tag_names.sort();
    tag_names.dedup();
    tag_names.truncate(limit);
    Ok(Json(TagNames { tag_names }).into_response())
}

async fn tags_v2(State(traces): State<Traces>, Query(params): Params, headers: HeaderMap) -> Reply {
    let tenant = tenant(&headers)?;
    let wanted = scopes(param(&params, "scope"))?;
    let (window, filter, limit) = (
        window_of(&params)?,
        lenient_filter(&params),
        tag_limit(&params)?,
    );
    let names = |scope, name| {
        let (traces, tenant, filter) = (&traces, &tenant, &filter);
        async move {
            if wanted.contains(&name) {
                query::attribute_names(traces, tenant, scope, window, filter, limit).await
            } else {
                Ok(Vec::new())
            }
        }
    };
    let (mut span, mut resource) = futures::try_join!(
        names(AttributeScope::Span, "span"),
        names(AttributeScope::Resource, "resource"),
    )?;
    let scopes = wanted
        .iter()
        .map(|&name| TagScope {
            name,
            tags: match name {
                "span" => std::mem::take(&mut span),
                "resource" => std::mem::take(&mut resource),
                _ => INTRINSIC_TAGS.iter().map(|t| t.to_string()).collect(),
            },
        })
        .collect();
    Ok(Json(TagScopes { scopes }).into_response())
}

async fn tag_values(
    State(traces): State<Traces>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Reply {
    let tenant = tenant(&headers)?;
    let source = TagSource::from_tag(&name);
    let (window, filter, limit) = (
        window_of(&params)?,
        lenient_filter(&params),
        tag_limit(&params)?,
    );
    let values = query::tag_values(&traces, &tenant, &source, window, &filter, limit).await?;
    Ok(Json(TagValues {
        tag_values: values.into_iter().map(|v| v.value).collect(),
    })
    .into_response())
}

async fn tag_values_v2(
    State(traces): State<Traces>,
    Path(name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Reply {
    let tenant = tenant(&headers)?;
    let source = TagSource::from_traceql(&name)?;
    let (window, filter, limit) = (
        window_of(&params)?,
        lenient_filter(&params),
        tag_limit(&params)?,
    );
    let values = query::tag_values(&traces, &tenant, &source, window, &filter, limit).await?;
    Ok(Json(TypedTagValues {
        tag_values: values.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// Which of the two trace-by-id answers to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TraceVersion {
    V1,
    V2,
}

async fn trace(
    State(traces): State<Traces>,
    Path(trace_id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Reply {
    trace_by_id(&traces, &trace_id, &params, &headers, TraceVersion::V1).await
}

async fn trace_v2(
    State(traces): State<Traces>,
    Path(trace_id): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Reply {
    trace_by_id(&traces, &trace_id, &params, &headers, TraceVersion::V2).await
}

async fn trace_by_id(
    traces: &Traces,
    trace_id: &str,
    params: &[(String, String)],
    headers: &HeaderMap,
    version: TraceVersion,
) -> Reply {
    let tenant = tenant(headers)?;
    // The catalog finds a trace by id alone, so a given range is only checked, never used to
    // cut a trace short.
    if param(params, "start").is_some() || param(params, "end").is_some() {
        window_of(params)?;
    }
    let batches = traces.spans(&tenant, trace_id).await?;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let protobuf = accept.is_some_and(|a| a.contains(PROTOBUF));
    // Converting and encoding a large trace is CPU work: keep it off the I/O threads.
    let body = tokio::task::spawn_blocking(move || encode_trace(&batches, version, protobuf))
        .await
        .map_err(|e| Error::Internal(format!("trace encoding task: {e}")))??;
    match body {
        None => Err(Error::NotFound(format!("trace {trace_id} not found")).into()),
        Some(bytes) => {
            let content_type = if protobuf {
                PROTOBUF
            } else {
                "application/json"
            };
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response())
        }
    }
}

/// The trace-by-id body for rows of one trace, `None` when there are none.
fn encode_trace(
    batches: &[arrow::array::RecordBatch],
    version: TraceVersion,
    protobuf: bool,
) -> crate::Result<Option<Vec<u8>>> {
    let records = span_records(batches)?;
    if records.is_empty() {
        return Ok(None);
    }
    let resource_spans = otlp_out::to_resource_spans(&records);
    let bytes = match (version, protobuf) {
        (TraceVersion::V1, true) => Trace { resource_spans }.encode_to_vec(),
        (TraceVersion::V2, true) => TraceByIdResponse {
            trace: Some(Trace { resource_spans }),
            status: 0,
            message: String::new(),
        }
        .encode_to_vec(),
        (TraceVersion::V1, false) => serde_json::to_vec(&TraceJson {
            batches: &resource_spans,
        })
        .map_err(|e| Error::Internal(format!("trace as JSON: {e}")))?,
        (TraceVersion::V2, false) => serde_json::to_vec(&TraceByIdJson {
            trace: TraceResourceSpans {
                resource_spans: &resource_spans,
            },
            status: "COMPLETE",
        })
        .map_err(|e| Error::Internal(format!("trace as JSON: {e}")))?,
    };
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bad(pairs: &[(&str, &str)]) -> String {
        search_request(&params(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn search_parameters() {
        let request = search_request(&params(&[
            ("tags", r#"service.name=frontend http.route="/a b""#),
            ("minDuration", "100ms"),
            ("maxDuration", "1.5s"),
            ("limit", "5"),
            ("spss", "2"),
            ("start", "1700000000"),
            ("end", "1700003600"),
        ]))
        .unwrap();
        let Search::Tags(request) = request else {
            panic!("tags= is a tag search")
        };
        assert_eq!(request.limit, 5);
        assert_eq!(request.spans_per_set, 2);
        assert_eq!(
            request.window,
            Window {
                start_ns: 1_700_000_000_000_000_000,
                end_ns: 1_700_003_600_000_000_000
            }
        );
        assert_eq!(request.filter.conditions.len(), 4);

        let Search::TraceQl(defaults) =
            search_request(&params(&[("q", "{}"), ("start", "0"), ("end", "0")])).unwrap()
        else {
            panic!("q= is a TraceQL search")
        };
        assert_eq!(defaults.limit, 20);
        assert_eq!(defaults.spans_per_set, DEFAULT_SPANS_PER_SET);
        assert_eq!(defaults.query.to_string(), "{}");
        let Search::TraceQl(bounded) = search_request(&params(&[
            ("q", "{ status = error }"),
            ("minDuration", "1s"),
            ("maxDuration", "2s"),
        ]))
        .unwrap() else {
            panic!("q= is a TraceQL search")
        };
        assert_eq!(
            bounded.query.to_string(),
            "{ status = error } | { traceDuration >= 1s && traceDuration <= 2s }"
        );
        let Search::Tags(all) = search_request(&params(&[("spss", "0")])).unwrap() else {
            panic!("no q= is a tag search")
        };
        assert_eq!(all.spans_per_set, MAX_SPANS_PER_SET);

        for (pairs, expected) in [
            (
                vec![("q", "{}"), ("tags", "a=b")],
                "can't specify tags and q",
            ),
            (
                vec![("minDuration", "soon")],
                "minDuration=\"soon\" is not a duration",
            ),
            (
                vec![("minDuration", "2s"), ("maxDuration", "1s")],
                "maxDuration must be greater than minDuration",
            ),
            (vec![("limit", "0")], "limit="),
            (vec![("spss", "x")], "spss="),
            (
                vec![("start", "20"), ("end", "10")],
                "the time range is empty",
            ),
            (vec![("tags", "novalue")], "tags"),
            (
                vec![("q", "{ name = }")],
                "q: parse error at line 1, column 10",
            ),
        ] {
            let message = bad(&pairs);
            assert!(message.contains(expected), "{pairs:?}: {message}");
        }
    }

    #[test]
    fn tag_scopes() {
        assert_eq!(scopes(None).unwrap().len(), 3);
        assert_eq!(scopes(Some("span")).unwrap(), &["span"]);
        assert!(scopes(Some("event")).unwrap().is_empty());
        assert!(
            scopes(Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("invalid scope: nope")
        );
    }

    #[test]
    fn lenient_filters_ignore_unfinished_queries() {
        let half = lenient_filter(&params(&[(
            "q",
            r#"{resource.service.name="a" && span.x="#,
        )]));
        assert!(half.conditions.is_empty());
        let whole = lenient_filter(&params(&[("q", r#"{resource.service.name="a"}"#)]));
        assert_eq!(whole.conditions.len(), 1);
    }

    #[tokio::test]
    async fn errors_are_plain_text_with_their_status() {
        let response = TempoError(Error::BadRequest("invalid limit".into())).into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(
            response.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"invalid request: invalid limit");
        let missing = TempoError(Error::NotFound("trace x not found".into())).into_response();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
