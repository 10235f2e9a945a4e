//! The queries behind the Tempo API, each a DataFusion plan over the `spans` table: traces with
//! a span matching a [`SpanFilter`] together with those spans, attribute names, and the values
//! of one attribute or intrinsic.
//!
//! Statements are fixed text; the values of a filter, a tag name and the time window travel as
//! `$n` parameters, and only numbers we parsed (limits) are written into the text.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimestampNanosecondType};
use datafusion::common::ScalarValue;
use spanlake_storage::TenantId;

use super::filter::{Condition, Scope, SpanFilter};
use crate::traces::{TraceHit, Traces, Window};
use crate::{Error, Result};

/// A trace search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: SpanFilter,
    /// Matching spans must start in it.
    pub window: Window,
    /// Most traces returned, newest first.
    pub limit: usize,
    /// Most matching spans returned per trace.
    pub spans_per_set: usize,
}

/// A span that met every condition of the filter.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpan {
    pub span_id: String,
    pub name: String,
    pub service: String,
    pub start_ns: i64,
    pub duration_ns: i64,
}

/// A trace found by a search: its summary and its first matching spans.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    pub hit: TraceHit,
    /// In start order, at most [`SearchRequest::spans_per_set`].
    pub spans: Vec<MatchedSpan>,
    /// All matching spans of the trace in the window.
    pub matched: u64,
}

/// Where attribute names are listed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeScope {
    Span,
    Resource,
}

/// What `/search/tag/{name}/values` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSource {
    /// Values of a span or resource attribute (or either).
    Attribute(Scope, String),
    /// Distinct values of a column: `service_name`, `span_name`, ...
    Column(Column),
    /// A closed set: `status`, `kind`.
    Fixed(&'static str, &'static [&'static str]),
    /// Something without a useful list of values, such as `duration`.
    None,
}

impl TagSource {
    /// A name of `/api/search/tag/{name}/values`, as in `tags=`: `service.name`, `name`,
    /// `status.code`, or any attribute.
    pub fn from_tag(name: &str) -> Self {
        match name {
            "service.name" => Self::Column(Column::Service),
            "name" => Self::Column(Column::SpanName),
            "status.code" => Self::Fixed("string", STATUS_VALUES),
            _ => Self::Attribute(Scope::Any, name.to_string()),
        }
    }

    /// A TraceQL name of `/api/v2/search/tag/{name}/values`: `resource.<attr>`, `span.<attr>`,
    /// `.<attr>` or an intrinsic.
    pub fn from_traceql(name: &str) -> Result<Self> {
        Ok(match name {
            "resource.service.name" => Self::Column(Column::Service),
            "name" | "span:name" => Self::Column(Column::SpanName),
            "status" | "span:status" => Self::Fixed("status", STATUS_VALUES),
            "kind" | "span:kind" => Self::Fixed("kind", KIND_VALUES),
            "statusMessage" | "span:statusMessage" => Self::Column(Column::StatusMessage),
            "rootServiceName" | "trace:rootService" => Self::Column(Column::RootService),
            "rootName" | "trace:rootName" => Self::Column(Column::RootName),
            "duration" | "span:duration" | "traceDuration" | "trace:duration" => Self::None,
            n if n.len() > "resource.".len() && n.starts_with("resource.") => {
                Self::Attribute(Scope::Resource, n["resource.".len()..].to_string())
            }
            n if n.len() > "span.".len() && n.starts_with("span.") => {
                Self::Attribute(Scope::Span, n["span.".len()..].to_string())
            }
            n if n.len() > 1 && n.starts_with('.') => {
                Self::Attribute(Scope::Any, n[1..].to_string())
            }
            // Scopes this store does not index yet answer with no values.
            n if [
                "event.",
                "link.",
                "instrumentation.",
                "event:",
                "link:",
                "instrumentation:",
            ]
            .iter()
            .any(|p| n.starts_with(p)) =>
            {
                Self::None
            }
            n => {
                return Err(Error::BadRequest(format!(
                    "tag {n:?} is not a TraceQL attribute or intrinsic: use resource.<name>, \
                     span.<name>, .<name>, name, status, kind, statusMessage, rootName or \
                     rootServiceName"
                )));
            }
        })
    }
}

/// The columns whose values can be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Service,
    SpanName,
    StatusMessage,
    RootService,
    RootName,
}

impl Column {
    /// The expression and the extra condition, both fixed text.
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Self::Service => ("service_name", ""),
            Self::SpanName => ("span_name", ""),
            Self::StatusMessage => ("status_message", " AND status_message <> ''"),
            Self::RootService => ("service_name", " AND parent_span_id IS NULL"),
            Self::RootName => ("span_name", " AND parent_span_id IS NULL"),
        }
    }
}

/// A value of a tag with Tempo's type name (`string`, `int`, `float`, `bool`, `status`, `kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagValue {
    pub r#type: &'static str,
    pub value: String,
}

pub const STATUS_VALUES: &[&str] = &["error", "ok", "unset"];
pub const KIND_VALUES: &[&str] = &[
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// Parameters in the order their `$n` placeholders were written.
#[derive(Default)]
struct Binder {
    params: Vec<ScalarValue>,
}

impl Binder {
    fn bind(&mut self, value: ScalarValue) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn text(&mut self, value: &str) -> String {
        self.bind(ScalarValue::Utf8(Some(value.to_string())))
    }

    /// `start_time` within the window, then every condition of `filter`, joined by `AND`.
    fn filter(&mut self, window: Window, filter: &SpanFilter) -> String {
        let start = self.bind(timestamp(window.start_ns));
        let end = self.bind(timestamp(window.end_ns));
        let mut sql = format!("start_time >= {start} AND start_time < {end}");
        for condition in &filter.conditions {
            sql.push_str(" AND ");
            sql.push_str(&self.condition(condition));
        }
        sql
    }

    fn condition(&mut self, condition: &Condition) -> String {
        match condition {
            Condition::Service(s) => format!("service_name = {}", self.text(s)),
            Condition::Name(s) => format!("span_name = {}", self.text(s)),
            Condition::Kind(k) => format!("span_kind = {}", self.text(k.as_str())),
            Condition::Status(s) => format!("status_code = {}", self.text(s.as_str())),
            Condition::Duration(op, ns) => format!(
                "duration_ns {} {}",
                op.sql(),
                self.bind(ScalarValue::Int64(Some(*ns)))
            ),
            Condition::Attribute { scope, key, value } => {
                let (k, v) = (self.text(key), self.text(value));
                match scope {
                    Scope::Span => format!("attributes[{k}] = {v}"),
                    Scope::Resource => format!("resource_attributes[{k}] = {v}"),
                    Scope::Any => {
                        format!("(attributes[{k}] = {v} OR resource_attributes[{k}] = {v})")
                    }
                }
            }
        }
    }
}

fn timestamp(ns: i64) -> ScalarValue {
    ScalarValue::TimestampNanosecond(Some(ns), Some("UTC".into()))
}

/// Column `i` as text, whichever string layout the plan produced.
pub(crate) fn texts(batch: &RecordBatch, i: usize) -> Result<Vec<Option<String>>> {
    let utf8 = arrow::compute::cast(batch.column(i), &DataType::Utf8)
        .map_err(|e| Error::Internal(format!("column {i} is not text: {e}")))?;
    let strings = utf8.as_string::<i32>();
    Ok((0..strings.len())
        .map(|r| (!strings.is_null(r)).then(|| strings.value(r).to_string()))
        .collect())
}

pub(crate) fn int64s(batch: &RecordBatch, i: usize) -> Result<Vec<i64>> {
    let ints = arrow::compute::cast(batch.column(i), &DataType::Int64)
        .map_err(|e| Error::Internal(format!("column {i} is not a number: {e}")))?;
    Ok(ints.as_primitive::<Int64Type>().values().to_vec())
}

/// Tempo's name for an attribute type kept in a `*_types` map (strings have none).
fn tempo_type(stored: Option<&str>) -> &'static str {
    match stored {
        Some("int") => "int",
        Some("double") => "float",
        Some("bool") => "bool",
        _ => "string",
    }
}

/// Traces with a span matching `request.filter` in the window, newest first, each with its
/// summary and first matching spans.
pub async fn search(
    traces: &Traces,
    tenant: &TenantId,
    request: &SearchRequest,
) -> Result<Vec<TraceMatch>> {
    let engine = traces.engine();
    let mut binder = Binder::default();
    let filter = binder.filter(request.window, &request.filter);
    let sql = format!(
        "SELECT trace_id, max(start_time) AS latest FROM spans WHERE {filter} \
         GROUP BY trace_id ORDER BY latest DESC LIMIT {}",
        request.limit.max(1)
    );
    let found = engine.query(tenant, &sql, binder.params).await?;
    let mut ids = Vec::new();
    for batch in &found {
        ids.extend(texts(batch, 0)?.into_iter().flatten());
    }
    if ids.is_empty() {
        return Ok(Vec::new());
    }

    let mut binder = Binder::default();
    let filter = binder.filter(request.window, &request.filter);
    let list: Vec<String> = ids.iter().map(|id| binder.text(id)).collect();
    let per_set = binder.bind(ScalarValue::Int64(Some(
        request.spans_per_set.clamp(1, i64::MAX as usize) as i64,
    )));
    let sql = format!(
        "SELECT trace_id, span_id, span_name, service_name, start_time, duration_ns, matched \
         FROM (SELECT trace_id, span_id, span_name, service_name, start_time, duration_ns, \
                 row_number() OVER (PARTITION BY trace_id ORDER BY start_time, span_id) AS nth, \
                 count(*) OVER (PARTITION BY trace_id) AS matched \
               FROM spans WHERE {filter} AND trace_id IN ({})) \
         WHERE nth <= {per_set} ORDER BY trace_id, start_time, span_id",
        list.join(", ")
    );
    let (summaries, spans) = futures::try_join!(
        traces.summaries(tenant, &ids),
        engine.query(tenant, &sql, binder.params)
    )?;

    let mut sets: HashMap<String, (Vec<MatchedSpan>, u64)> = HashMap::new();
    for batch in &spans {
        let trace = texts(batch, 0)?;
        let span_id = texts(batch, 1)?;
        let name = texts(batch, 2)?;
        let service = texts(batch, 3)?;
        let start = batch.column(4).as_primitive::<TimestampNanosecondType>();
        let duration = int64s(batch, 5)?;
        let matched = int64s(batch, 6)?;
        for row in 0..batch.num_rows() {
            let set = sets
                .entry(trace[row].clone().unwrap_or_default())
                .or_default();
            set.0.push(MatchedSpan {
                span_id: span_id[row].clone().unwrap_or_default(),
                name: name[row].clone().unwrap_or_default(),
                service: service[row].clone().unwrap_or_default(),
                start_ns: start.value(row),
                duration_ns: duration[row],
            });
            set.1 = matched[row].max(0) as u64;
        }
    }
    Ok(summaries
        .into_iter()
        .map(|hit| {
            let (spans, matched) = sets.remove(&hit.trace_id).unwrap_or_default();
            TraceMatch {
                hit,
                spans,
                matched,
            }
        })
        .collect())
}

/// Distinct attribute keys of spans in the window that match `filter`, sorted, at most `limit`.
pub async fn attribute_names(
    traces: &Traces,
    tenant: &TenantId,
    scope: AttributeScope,
    window: Window,
    filter: &SpanFilter,
    limit: usize,
) -> Result<Vec<String>> {
    let mut binder = Binder::default();
    let filter = binder.filter(window, filter);
    let map = match scope {
        AttributeScope::Span => "attributes",
        AttributeScope::Resource => "resource_attributes",
    };
    let sql = format!(
        "SELECT DISTINCT key FROM (SELECT unnest(map_keys({map})) AS key FROM spans \
         WHERE {filter}) ORDER BY key LIMIT {}",
        limit.max(1)
    );
    let batches = traces.engine().query(tenant, &sql, binder.params).await?;
    let mut out = Vec::new();
    for batch in &batches {
        out.extend(texts(batch, 0)?.into_iter().flatten());
    }
    Ok(out)
}

/// Distinct values of `source` on spans in the window that match `filter`, sorted by value, at
/// most `limit`.
pub async fn tag_values(
    traces: &Traces,
    tenant: &TenantId,
    source: &TagSource,
    window: Window,
    filter: &SpanFilter,
    limit: usize,
) -> Result<Vec<TagValue>> {
    let limit = limit.max(1);
    let mut binder = Binder::default();
    let sql = match source {
        TagSource::None => return Ok(Vec::new()),
        TagSource::Fixed(r#type, values) => {
            return Ok(values
                .iter()
                .take(limit)
                .map(|v| TagValue {
                    r#type,
                    value: v.to_string(),
                })
                .collect());
        }
        TagSource::Column(column) => {
            let filter = binder.filter(window, filter);
            let (expr, extra) = column.sql();
            format!(
                "SELECT DISTINCT {expr} AS value, CAST(NULL AS VARCHAR) AS type FROM spans \
                 WHERE {filter}{extra} ORDER BY value LIMIT {limit}"
            )
        }
        TagSource::Attribute(scope, key) => {
            let filter = binder.filter(window, filter);
            let key = binder.text(key);
            let span = format!(
                "SELECT attributes[{key}] AS value, attribute_types[{key}] AS type \
                 FROM spans WHERE {filter}"
            );
            let resource = format!(
                "SELECT resource_attributes[{key}] AS value, resource_attribute_types[{key}] AS type \
                 FROM spans WHERE {filter}"
            );
            let inner = match scope {
                Scope::Span => span,
                Scope::Resource => resource,
                Scope::Any => format!("{span} UNION ALL {resource}"),
            };
            format!(
                "SELECT value, type FROM ({inner}) WHERE value IS NOT NULL \
                 GROUP BY value, type ORDER BY value LIMIT {limit}"
            )
        }
    };
    let batches = traces.engine().query(tenant, &sql, binder.params).await?;
    let mut out: Vec<TagValue> = Vec::new();
    for batch in &batches {
        let values = texts(batch, 0)?;
        let types = texts(batch, 1)?;
        for (value, stored) in values.into_iter().zip(types) {
            let Some(value) = value else { continue };
            // The same text under two types (an int 5 and a string "5") is listed once.
            if out.last().is_some_and(|last| last.value == value) {
                continue;
            }
            out.push(TagValue {
                r#type: tempo_type(stored.as_deref()),
                value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use spanlake_storage::batch::{AttrValue, SpanBatchBuilder, SpanFields, SpanKind, StatusCode};
    use spanlake_storage::{SegmentSource, SpanSink, Store, StoreConfig};

    use super::*;
    use crate::QueryEngine;

    const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    struct Span<'a> {
        trace: u8,
        id: u8,
        parent: Option<u8>,
        service: &'a str,
        name: &'a str,
        kind: SpanKind,
        start_ms: i64,
        duration_ms: i64,
        error: bool,
        attributes: &'a [(&'a str, AttrValue<'a>)],
    }

    fn batch(spans: &[Span<'_>]) -> RecordBatch {
        let mut b = SpanBatchBuilder::new();
        for s in spans {
            let span_id = [s.id; 8];
            let parent = s.parent.map(|p| [p; 8]);
            b.begin_span(&SpanFields {
                trace_id: &[s.trace; 16],
                span_id: &span_id,
                parent_span_id: parent.as_ref().map_or(&[], |p| p.as_slice()),
                service_name: s.service,
                name: s.name,
                kind: s.kind,
                start_unix_nano: T0 + s.start_ms * MS,
                end_unix_nano: T0 + (s.start_ms + s.duration_ms) * MS,
                status_code: if s.error {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: if s.error { "boom" } else { "" },
                ..SpanFields::default()
            });
            for (k, v) in s.attributes {
                b.attributes().push(k, v);
            }
            b.resource_attributes()
                .push("service.name", &AttrValue::Str(s.service));
            b.resource_attributes()
                .push("k8s.namespace", &AttrValue::Str("shop"));
            b.end_span();
        }
        b.finish().unwrap()
    }

    /// Trace 1: frontend GET /cart (server, 120 ms) -> frontend call (client) -> cart
    /// POST /items (server, error, http.status_code=500). Trace 2: frontend GET /home (30 ms).
    async fn traces() -> (Traces, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StoreConfig::new(dir.path());
        config.flush_interval = Duration::from_secs(3600);
        let store = Arc::new(Store::open(config).await.unwrap());
        let tenant = TenantId::default_tenant();
        let code = |c| [("http.status_code", AttrValue::Int(c))];
        let (ok, failed) = (code(200), code(500));
        let chain = [
            Span {
                trace: 1,
                id: 1,
                parent: None,
                service: "frontend",
                name: "GET /cart",
                kind: SpanKind::Server,
                start_ms: 0,
                duration_ms: 120,
                error: false,
                attributes: &ok,
            },
            Span {
                trace: 1,
                id: 2,
                parent: Some(1),
                service: "frontend",
                name: "POST cart",
                kind: SpanKind::Client,
                start_ms: 10,
                duration_ms: 100,
                error: false,
                attributes: &[("peer.service", AttrValue::Str("cart"))],
            },
            Span {
                trace: 1,
                id: 3,
                parent: Some(2),
                service: "cart",
                name: "POST /items",
                kind: SpanKind::Server,
                start_ms: 20,
                duration_ms: 80,
                error: true,
                attributes: &failed,
            },
        ];
        store.append(&tenant, batch(&chain)).await.unwrap();
        store.flush().await.unwrap();
        let home = [Span {
            trace: 2,
            id: 4,
            parent: None,
            service: "frontend",
            name: "GET /home",
            kind: SpanKind::Server,
            start_ms: 1000,
            duration_ms: 30,
            error: false,
            attributes: &ok,
        }];
        store.append(&tenant, batch(&home)).await.unwrap();
        let source: Arc<dyn SegmentSource> = store;
        let engine = QueryEngine::new(source, crate::QueryLimits::default()).unwrap();
        (Traces::new(Arc::new(engine)), dir)
    }

    fn window() -> Window {
        Window {
            start_ns: T0 - 1000 * MS,
            end_ns: T0 + 10_000 * MS,
        }
    }

    fn request(q: &str) -> SearchRequest {
        SearchRequest {
            filter: SpanFilter::from_traceql(q).unwrap(),
            window: window(),
            limit: 20,
            spans_per_set: 3,
        }
    }

    fn trace_id(n: u8) -> String {
        format!("{n:02x}").repeat(16)
    }

    #[tokio::test]
    async fn search_returns_summaries_and_matching_spans() {
        let (traces, _dir) = traces().await;
        let tenant = TenantId::default_tenant();

        let all = search(&traces, &tenant, &request("{}")).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|m| m.hit.trace_id.clone())
                .collect::<Vec<_>>(),
            vec![trace_id(2), trace_id(1)]
        );
        assert_eq!(all[1].matched, 3);
        assert_eq!(
            all[1]
                .spans
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["GET /cart", "POST cart", "POST /items"]
        );
        assert_eq!(all[1].hit.root_service.as_deref(), Some("frontend"));

        let cart = search(
            &traces,
            &tenant,
            &request(
                r#"{resource.service.name="cart" && span.http.status_code=500 && status=error}"#,
            ),
        )
        .await
        .unwrap();
        assert_eq!(cart.len(), 1);
        assert_eq!(cart[0].hit.trace_id, trace_id(1));
        assert_eq!(cart[0].matched, 1);
        assert_eq!(
            cart[0].spans,
            vec![MatchedSpan {
                span_id: "0303030303030303".into(),
                name: "POST /items".into(),
                service: "cart".into(),
                start_ns: T0 + 20 * MS,
                duration_ns: 80 * MS,
            }]
        );

        let mut two = request("{kind=server}");
        two.spans_per_set = 1;
        two.limit = 1;
        let newest = search(&traces, &tenant, &two).await.unwrap();
        assert_eq!(newest.len(), 1);
        assert_eq!(newest[0].hit.trace_id, trace_id(2));

        let slow = search(&traces, &tenant, &request("{duration > 100ms}"))
            .await
            .unwrap();
        assert_eq!(slow.len(), 1);
        assert_eq!(slow[0].spans[0].name, "GET /cart");

        // Scoped attributes look only where they are told: the namespace is on the resource.
        for (q, hits) in [
            (r#"{resource.k8s.namespace="shop"}"#, 2),
            (r#"{.k8s.namespace="shop"}"#, 2),
            (r#"{span.k8s.namespace="shop"}"#, 0),
            (r#"{status=ok}"#, 0),
        ] {
            let found = search(&traces, &tenant, &request(q)).await.unwrap();
            assert_eq!(found.len(), hits, "{q}");
        }

        let tags = SpanFilter::from_tags(&[("peer.service".into(), "cart".into())])
            .unwrap()
            .with_durations(Some(100 * MS), None);
        let found = search(
            &traces,
            &tenant,
            &SearchRequest {
                filter: tags,
                ..request("{}")
            },
        )
        .await
        .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].spans[0].name, "POST cart");

        let outside = SearchRequest {
            window: Window {
                start_ns: T0 + 5_000 * MS,
                end_ns: T0 + 6_000 * MS,
            },
            ..request("{}")
        };
        assert!(search(&traces, &tenant, &outside).await.unwrap().is_empty());
        let other = TenantId::new("other").unwrap();
        assert!(
            search(&traces, &other, &request("{}"))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn attribute_names_and_values() {
        let (traces, _dir) = traces().await;
        let tenant = TenantId::default_tenant();
        let all = SpanFilter::default();
        let span = attribute_names(&traces, &tenant, AttributeScope::Span, window(), &all, 100)
            .await
            .unwrap();
        assert_eq!(span, ["http.status_code", "peer.service"]);
        let resource = attribute_names(
            &traces,
            &tenant,
            AttributeScope::Resource,
            window(),
            &all,
            1,
        )
        .await
        .unwrap();
        assert_eq!(resource, ["k8s.namespace"]);

        let values = |source: TagSource, filter: SpanFilter| {
            let (traces, tenant) = (traces.clone(), tenant.clone());
            async move {
                tag_values(&traces, &tenant, &source, window(), &filter, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| format!("{}:{}", v.r#type, v.value))
                    .collect::<Vec<_>>()
            }
        };
        let codes = TagSource::Attribute(Scope::Span, "http.status_code".into());
        assert_eq!(
            values(codes.clone(), all.clone()).await,
            ["int:200", "int:500"]
        );
        let cart = SpanFilter::from_traceql(r#"{resource.service.name="cart"}"#).unwrap();
        assert_eq!(values(codes, cart).await, ["int:500"]);
        assert_eq!(
            values(
                TagSource::Attribute(Scope::Any, "service.name".into()),
                all.clone()
            )
            .await,
            ["string:cart", "string:frontend"]
        );
        assert_eq!(
            values(TagSource::Column(Column::Service), all.clone()).await,
            ["string:cart", "string:frontend"]
        );
        assert_eq!(
            values(TagSource::Column(Column::RootName), all.clone()).await,
            ["string:GET /cart", "string:GET /home"]
        );
        assert_eq!(
            values(TagSource::Column(Column::StatusMessage), all.clone()).await,
            ["string:boom"]
        );
        let slow = SpanFilter::default().with_durations(Some(100 * MS), None);
        assert_eq!(
            values(TagSource::Column(Column::SpanName), slow).await,
            ["string:GET /cart", "string:POST cart"]
        );
        assert_eq!(
            values(TagSource::Fixed("status", STATUS_VALUES), all.clone()).await,
            ["status:error", "status:ok", "status:unset"]
        );
        assert!(values(TagSource::None, all).await.is_empty());
    }

    #[test]
    fn tag_names_choose_sources() {
        let attr = |scope, key: &str| TagSource::Attribute(scope, key.to_string());
        for (name, source) in [
            ("resource.service.name", TagSource::Column(Column::Service)),
            ("resource.host.name", attr(Scope::Resource, "host.name")),
            ("span.http.route", attr(Scope::Span, "http.route")),
            (".http.route", attr(Scope::Any, "http.route")),
            ("name", TagSource::Column(Column::SpanName)),
            ("status", TagSource::Fixed("status", STATUS_VALUES)),
            ("span:kind", TagSource::Fixed("kind", KIND_VALUES)),
            ("rootServiceName", TagSource::Column(Column::RootService)),
            ("duration", TagSource::None),
            ("event.exception.type", TagSource::None),
        ] {
            assert_eq!(TagSource::from_traceql(name).unwrap(), source, "{name}");
        }
        for bad in ["http.route", "span.", "resource.", "."] {
            let e = TagSource::from_traceql(bad).unwrap_err().to_string();
            assert!(e.contains("is not a TraceQL attribute"), "{bad}: {e}");
        }
        assert_eq!(
            TagSource::from_tag("service.name"),
            TagSource::Column(Column::Service)
        );
        assert_eq!(
            TagSource::from_tag("name"),
            TagSource::Column(Column::SpanName)
        );
        assert_eq!(
            TagSource::from_tag("http.route"),
            attr(Scope::Any, "http.route")
        );
    }
}
