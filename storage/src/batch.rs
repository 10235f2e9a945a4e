//! Building span batches: the one place that knows how a span becomes a row of
//! [`span_schema`]. Receivers call it with plain values; it knows
//! nothing of OTLP.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, ListArray, MapBuilder, MapFieldNames, RecordBatch, StringBuilder,
    StructArray, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use base64::Engine as _;

use crate::schema::{event_fields, link_fields, span_schema};
use crate::{Error, Result};

/// What a span does in a call chain, as OTLP defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// The OTLP enum number; unknown numbers map to `Unspecified`.
    pub fn from_otlp(kind: i32) -> Self {
        match kind {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The value stored in the `span_kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "UNSPECIFIED",
            Self::Internal => "INTERNAL",
            Self::Server => "SERVER",
            Self::Client => "CLIENT",
            Self::Producer => "PRODUCER",
            Self::Consumer => "CONSUMER",
        }
    }
}

/// The final status of a span, as OTLP defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// The OTLP enum number; unknown numbers map to `Unset`.
    pub fn from_otlp(code: i32) -> Self {
        match code {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// The value stored in the `status_code` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "UNSET",
            Self::Ok => "OK",
            Self::Error => "ERROR",
        }
    }
}

/// One attribute value with its OTLP type.
///
/// Stored as text in the `attributes` map (so SQL can index it by key) and, unless it is a
/// string, with its type name in the `attribute_types` map, so the exact value and type can be
/// rebuilt: integers as decimal, doubles in Rust's shortest round-trip form, bytes as base64,
/// arrays and key-value lists as OTLP/JSON `AnyValue` text.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    /// An array, already rendered as OTLP/JSON.
    Array(String),
    /// A key-value list, already rendered as OTLP/JSON.
    KvList(String),
    /// An `AnyValue` with no value set.
    Empty,
}

impl AttrValue<'_> {
    /// The name kept in the `*_types` map; `None` for strings, the common case.
    pub fn type_name(&self) -> Option<&'static str> {
        match self {
            Self::Str(_) => None,
            Self::Int(_) => Some("int"),
            Self::Double(_) => Some("double"),
            Self::Bool(_) => Some("bool"),
            Self::Bytes(_) => Some("bytes"),
            Self::Array(_) => Some("array"),
            Self::KvList(_) => Some("kvlist"),
            Self::Empty => Some("empty"),
        }
    }

    /// Appends the text form to `out`; `false` for an empty value (stored as NULL).
    fn write_text(&self, out: &mut String) -> bool {
        match self {
            Self::Str(s) => out.push_str(s),
            // itoa rather than `write!`: no formatter machinery per value (BENCHMARKS.md).
            Self::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Self::Double(d) => {
                let _ = write!(out, "{d}");
            }
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, out),
            Self::Array(json) | Self::KvList(json) => out.push_str(json),
            Self::Empty => return false,
        }
        true
    }
}

/// An attribute in the form the maps store it: its text (`None` for an empty value, stored as
/// NULL) and, unless it is a string, its OTLP type name. Made once, it can be pushed into many
/// rows without rendering the value again (a resource's attributes go on each of its spans).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAttr<'a> {
    key: &'a str,
    text: Option<std::borrow::Cow<'a, str>>,
    type_name: Option<&'static str>,
}

impl<'a> StoredAttr<'a> {
    pub fn new(key: &'a str, value: AttrValue<'a>) -> Self {
        let type_name = value.type_name();
        let text = match value {
            AttrValue::Str(s) => Some(std::borrow::Cow::Borrowed(s)),
            AttrValue::Array(json) | AttrValue::KvList(json) => Some(json.into()),
            other => {
                let mut out = String::new();
                other.write_text(&mut out).then_some(out.into())
            }
        };
        Self {
            key,
            text,
            type_name,
        }
    }
}

fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

fn map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    )
}

/// The most bytes or items one buffer of a batch reserves up front: an estimate past it (a
/// hostile request, a huge resource repeated on every span) grows as it is filled instead.
const MAX_RESERVED: usize = 64 << 20;

fn reserved(n: usize) -> usize {
    n.clamp(1, MAX_RESERVED)
}

fn map_builder_with_capacity(
    rows: usize,
    capacity: &MapCapacity,
) -> MapBuilder<StringBuilder, StringBuilder> {
    let entries = reserved(capacity.entries);
    MapBuilder::with_capacity(
        Some(map_names()),
        StringBuilder::with_capacity(entries, reserved(capacity.key_bytes)),
        StringBuilder::with_capacity(entries, reserved(capacity.value_bytes)),
        reserved(rows),
    )
}

/// What an attribute map column of a batch will hold, to size its builders up front.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapCapacity {
    pub entries: usize,
    pub key_bytes: usize,
    pub value_bytes: usize,
}

impl MapCapacity {
    /// Counts one more entry of `key_bytes` and `value_bytes`.
    pub fn add_entry(&mut self, key_bytes: usize, value_bytes: usize) {
        self.entries += 1;
        self.key_bytes += key_bytes;
        self.value_bytes += value_bytes;
    }
}

impl std::ops::AddAssign for MapCapacity {
    fn add_assign(&mut self, more: Self) {
        self.entries += more.entries;
        self.key_bytes += more.key_bytes;
        self.value_bytes += more.value_bytes;
    }
}

/// What a batch will hold, for [`SpanBatchBuilder::with_capacity`]. Builders that grow by
/// doubling copy their contents at each step and leave up to half their memory unused: sized
/// from the request, the columns it knows are built without either (events, links and values
/// longer than estimated still grow).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCapacity {
    pub spans: usize,
    /// Spans with a parent (the others' parent id is NULL).
    pub children: usize,
    /// Bytes of each text column, over all spans.
    pub span_name_bytes: usize,
    pub service_name_bytes: usize,
    pub span_kind_bytes: usize,
    pub status_code_bytes: usize,
    pub scope_name_bytes: usize,
    pub scope_version_bytes: usize,
    pub attributes: MapCapacity,
    pub attribute_types: MapCapacity,
    pub resource_attributes: MapCapacity,
    pub resource_attribute_types: MapCapacity,
}

/// Builds one attribute set per row: the `attributes` map and its `attribute_types` sibling.
pub struct AttrMapBuilder {
    values: MapBuilder<StringBuilder, StringBuilder>,
    types: MapBuilder<StringBuilder, StringBuilder>,
    scratch: String,
    rows: usize,
}

impl Default for AttrMapBuilder {
    fn default() -> Self {
        Self {
            values: map_builder(),
            types: map_builder(),
            scratch: String::new(),
            rows: 0,
        }
    }
}

impl AttrMapBuilder {
    /// Adds one attribute to the current row.
    pub fn push(&mut self, key: &str, value: &AttrValue<'_>) {
        let (keys, values) = self.values.entries();
        keys.append_value(key);
        if let AttrValue::Str(s) = value {
            // The common case, copied once.
            values.append_value(s);
        } else {
            self.scratch.clear();
            if value.write_text(&mut self.scratch) {
                values.append_value(&self.scratch);
            } else {
                values.append_null();
            }
        }
        if let Some(type_name) = value.type_name() {
            let (keys, types) = self.types.entries();
            keys.append_value(key);
            types.append_value(type_name);
        }
    }

    /// Adds one attribute, already rendered, to the current row.
    pub fn push_stored(&mut self, attr: &StoredAttr<'_>) {
        let (keys, values) = self.values.entries();
        keys.append_value(attr.key);
        match &attr.text {
            Some(text) => values.append_value(text),
            None => values.append_null(),
        }
        if let Some(type_name) = attr.type_name {
            let (keys, types) = self.types.entries();
            keys.append_value(attr.key);
            types.append_value(type_name);
        }
    }

    /// Ends the current row; the next `push` starts a new one.
    pub fn finish_row(&mut self) {
        // Appending `true` to a MapBuilder cannot fail: keys and values are pushed in pairs.
        self.values.append(true).expect("keys and values in pairs");
        self.types.append(true).expect("keys and values in pairs");
        self.rows += 1;
    }

    fn finish(&mut self) -> (ArrayRef, ArrayRef) {
        (
            Arc::new(self.values.finish()),
            Arc::new(self.types.finish()),
        )
    }
}

/// A span event, before its attributes.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub time_unix_nano: i64,
    pub name: &'a str,
    pub dropped_attributes_count: u32,
}

/// A span link, before its attributes.
#[derive(Debug, Clone, Copy)]
pub struct LinkFields<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: &'a str,
    pub flags: u32,
    pub dropped_attributes_count: u32,
}

/// The list of events of each row.
#[derive(Default)]
pub struct EventsBuilder {
    offsets: Vec<i32>,
    time: TimestampNanosecondBuilder,
    name: StringBuilder,
    attributes: AttrMapBuilder,
    dropped: UInt32Builder,
}

impl EventsBuilder {
    /// Starts an event of the current row; push its attributes with [`Self::attributes`], then
    /// call [`Self::end_event`].
    pub fn begin_event(&mut self, event: &EventFields<'_>) {
        self.time.append_value(event.time_unix_nano);
        self.name.append_value(event.name);
        self.dropped.append_value(event.dropped_attributes_count);
    }

    pub fn attributes(&mut self) -> &mut AttrMapBuilder {
        &mut self.attributes
    }

    pub fn end_event(&mut self) {
        self.attributes.finish_row();
    }

    fn finish_row(&mut self) {
        self.offsets.push(self.attributes.rows as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        let (attributes, types) = self.attributes.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish().with_timezone("UTC")),
            Arc::new(self.name.finish()),
            attributes,
            types,
            Arc::new(self.dropped.finish()),
        ];
        list_of_structs(event_fields(), columns, &mut self.offsets)
    }
}

/// The list of links of each row.
#[derive(Default)]
pub struct LinksBuilder {
    offsets: Vec<i32>,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attributes: AttrMapBuilder,
    dropped: UInt32Builder,
}

impl LinksBuilder {
    /// Starts a link of the current row; push its attributes with [`Self::attributes`], then call
    /// [`Self::end_link`].
    pub fn begin_link(&mut self, link: &LinkFields<'_>) {
        append_hex(&mut self.trace_id, link.trace_id);
        append_hex(&mut self.span_id, link.span_id);
        self.trace_state.append_value(link.trace_state);
        self.flags.append_value(link.flags);
        self.dropped.append_value(link.dropped_attributes_count);
    }

    pub fn attributes(&mut self) -> &mut AttrMapBuilder {
        &mut self.attributes
    }

    pub fn end_link(&mut self) {
        self.attributes.finish_row();
    }

    fn finish_row(&mut self) {
        self.offsets.push(self.attributes.rows as i32);
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        let (attributes, types) = self.attributes.finish();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            attributes,
            types,
            Arc::new(self.dropped.finish()),
        ];
        list_of_structs(link_fields(), columns, &mut self.offsets)
    }
}

fn list_of_structs(
    fields: arrow::datatypes::Fields,
    columns: Vec<ArrayRef>,
    ends: &mut Vec<i32>,
) -> Result<ArrayRef> {
    let values = StructArray::try_new(fields.clone(), columns, None)?;
    let mut offsets = Vec::with_capacity(ends.len() + 1);
    offsets.push(0);
    offsets.append(ends);
    let item = Arc::new(Field::new("element", DataType::Struct(fields), false));
    let list = ListArray::try_new(
        item,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )?;
    Ok(Arc::new(list))
}

/// The scalar fields of one span and of the resource and scope it came from. The default is
/// all empty and zero (a base for spans built field by field).
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanFields<'a> {
    /// 16 bytes; validated by the receiver.
    pub trace_id: &'a [u8],
    /// 8 bytes; validated by the receiver.
    pub span_id: &'a [u8],
    /// Empty for a root span.
    pub parent_span_id: &'a [u8],
    pub trace_state: &'a str,
    pub service_name: &'a str,
    pub name: &'a str,
    pub kind: SpanKind,
    pub start_unix_nano: i64,
    pub end_unix_nano: i64,
    pub status_code: StatusCode,
    pub status_message: &'a str,
    pub scope_name: &'a str,
    pub scope_version: &'a str,
    pub flags: u32,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
}

/// Accumulates spans into one Arrow [`RecordBatch`] of [`span_schema`].
///
/// For each span: [`Self::begin_span`], then its attributes, resource attributes, events and
/// links through the accessors (each may be left empty), then [`Self::end_span`].
#[derive(Default)]
pub struct SpanBatchBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    service_name: StringBuilder,
    span_name: StringBuilder,
    span_kind: StringBuilder,
    start_time: TimestampNanosecondBuilder,
    end_time: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    attributes: AttrMapBuilder,
    resource_attributes: AttrMapBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: AttrMapBuilder,
    events: EventsBuilder,
    links: LinksBuilder,
    flags: UInt32Builder,
    dropped_attributes_count: UInt32Builder,
    dropped_events_count: UInt32Builder,
    dropped_links_count: UInt32Builder,
    len: usize,
}

fn append_hex(builder: &mut StringBuilder, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    let out = &mut buf[..bytes.len().min(32) * 2];
    const_hex::encode_to_slice(&bytes[..out.len() / 2], out).expect("output sized to input");
    builder.append_value(std::str::from_utf8(out).expect("hex is ascii"));
}

impl SpanBatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder sized for `capacity`, each buffer to at most [`MAX_RESERVED`] (events and
    /// links, which most spans have none of, start at Arrow's defaults).
    pub fn with_capacity(capacity: &BatchCapacity) -> Self {
        let n = reserved(capacity.spans);
        let text = |bytes: usize| StringBuilder::with_capacity(n, reserved(bytes));
        let attrs = |values: &MapCapacity, types: &MapCapacity| AttrMapBuilder {
            values: map_builder_with_capacity(n, values),
            types: map_builder_with_capacity(n, types),
            scratch: String::new(),
            rows: 0,
        };
        Self {
            trace_id: text(n * 32),
            span_id: text(n * 16),
            parent_span_id: text(capacity.children * 16),
            trace_state: text(0),
            service_name: text(capacity.service_name_bytes),
            span_name: text(capacity.span_name_bytes),
            span_kind: text(capacity.span_kind_bytes),
            start_time: TimestampNanosecondBuilder::with_capacity(n),
            end_time: TimestampNanosecondBuilder::with_capacity(n),
            duration_ns: Int64Builder::with_capacity(n),
            status_code: text(capacity.status_code_bytes),
            status_message: text(0),
            attributes: attrs(&capacity.attributes, &capacity.attribute_types),
            resource_attributes: attrs(
                &capacity.resource_attributes,
                &capacity.resource_attribute_types,
            ),
            scope_name: text(capacity.scope_name_bytes),
            scope_version: text(capacity.scope_version_bytes),
            // Few scopes carry attributes: Arrow's default sizes.
            scope_attributes: AttrMapBuilder::default(),
            events: EventsBuilder::default(),
            links: LinksBuilder::default(),
            flags: UInt32Builder::with_capacity(n),
            dropped_attributes_count: UInt32Builder::with_capacity(n),
            dropped_events_count: UInt32Builder::with_capacity(n),
            dropped_links_count: UInt32Builder::with_capacity(n),
            len: 0,
        }
    }

    /// Number of finished spans.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn begin_span(&mut self, span: &SpanFields<'_>) {
        append_hex(&mut self.trace_id, span.trace_id);
        append_hex(&mut self.span_id, span.span_id);
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            append_hex(&mut self.parent_span_id, span.parent_span_id);
        }
        self.trace_state.append_value(span.trace_state);
        self.service_name.append_value(span.service_name);
        self.span_name.append_value(span.name);
        self.span_kind.append_value(span.kind.as_str());
        self.start_time.append_value(span.start_unix_nano);
        self.end_time.append_value(span.end_unix_nano);
        self.duration_ns
            .append_value(span.end_unix_nano.saturating_sub(span.start_unix_nano));
        self.status_code.append_value(span.status_code.as_str());
        self.status_message.append_value(span.status_message);
        self.scope_name.append_value(span.scope_name);
        self.scope_version.append_value(span.scope_version);
        self.flags.append_value(span.flags);
        self.dropped_attributes_count
            .append_value(span.dropped_attributes_count);
        self.dropped_events_count
            .append_value(span.dropped_events_count);
        self.dropped_links_count
            .append_value(span.dropped_links_count);
    }

    pub fn attributes(&mut self) -> &mut AttrMapBuilder {
        &mut self.attributes
    }

    pub fn resource_attributes(&mut self) -> &mut AttrMapBuilder {
        &mut self.resource_attributes
    }

    /// The attributes of the span's instrumentation scope.
    pub fn scope_attributes(&mut self) -> &mut AttrMapBuilder {
        &mut self.scope_attributes
    }

    pub fn events(&mut self) -> &mut EventsBuilder {
        &mut self.events
    }

    pub fn links(&mut self) -> &mut LinksBuilder {
        &mut self.links
    }

    pub fn end_span(&mut self) {
        self.attributes.finish_row();
        self.resource_attributes.finish_row();
        self.scope_attributes.finish_row();
        self.events.finish_row();
        self.links.finish_row();
        self.len += 1;
    }

    /// Finishes the batch; the builder is empty afterwards and can be reused.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let (attributes, attribute_types) = self.attributes.finish();
        let (resource_attributes, resource_attribute_types) = self.resource_attributes.finish();
        let (scope_attributes, scope_attribute_types) = self.scope_attributes.finish();
        let tz = |b: &mut TimestampNanosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.span_name.finish()),
            Arc::new(self.span_kind.finish()),
            tz(&mut self.start_time),
            tz(&mut self.end_time),
            Arc::new(self.duration_ns.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            attributes,
            attribute_types,
            resource_attributes,
            resource_attribute_types,
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            scope_attributes,
            scope_attribute_types,
            self.events.finish()?,
            self.links.finish()?,
            Arc::new(self.flags.finish()),
            Arc::new(self.dropped_attributes_count.finish()),
            Arc::new(self.dropped_events_count.finish()),
            Arc::new(self.dropped_links_count.finish()),
        ];
        self.len = 0;
        self.attributes.rows = 0;
        self.resource_attributes.rows = 0;
        self.scope_attributes.rows = 0;
        self.events.attributes.rows = 0;
        self.links.attributes.rows = 0;
        RecordBatch::try_new(span_schema(), columns).map_err(|e| Error::Internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::col;
    use arrow::util::pretty::pretty_format_batches;

    fn span<'a>(trace: &'a [u8], id: &'a [u8], parent: &'a [u8]) -> SpanFields<'a> {
        SpanFields {
            trace_id: trace,
            span_id: id,
            parent_span_id: parent,
            trace_state: "",
            service_name: "checkout",
            name: "GET /cart",
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_000,
            end_unix_nano: 1_700_000_000_250_000_000,
            status_code: StatusCode::Error,
            status_message: "boom",
            scope_name: "io.opentelemetry.http",
            scope_version: "1.0",
            flags: 1,
            dropped_attributes_count: 0,
            dropped_events_count: 0,
            dropped_links_count: 0,
        }
    }

    #[test]
    fn builds_rows_with_typed_attributes_events_and_links() {
        let trace = [0xab; 16];
        let mut b = SpanBatchBuilder::new();
        b.begin_span(&span(&trace, &[1; 8], &[]));
        b.attributes().push("http.route", &AttrValue::Str("/cart"));
        b.attributes()
            .push("http.status_code", &AttrValue::Int(500));
        b.attributes().push("ratio", &AttrValue::Double(0.25));
        b.resource_attributes()
            .push("service.name", &AttrValue::Str("checkout"));
        b.scope_attributes()
            .push("library.tier", &AttrValue::Int(2));
        b.events().begin_event(&EventFields {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception",
            dropped_attributes_count: 0,
        });
        b.events()
            .attributes()
            .push("exception.type", &AttrValue::Str("E"));
        b.events().end_event();
        b.end_span();
        b.begin_span(&span(&trace, &[2; 8], &[1; 8]));
        b.links().begin_link(&LinkFields {
            trace_id: &[0xcd; 16],
            span_id: &[3; 8],
            trace_state: "",
            flags: 0,
            dropped_attributes_count: 0,
        });
        b.links().end_link();
        b.end_span();
        let batch = b.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        let schema = span_schema();
        let at = |name| schema.index_of(name).unwrap();
        let projected = batch
            .project(&[
                at(col::SPAN_ID),
                at(col::PARENT_SPAN_ID),
                at(col::ATTRIBUTES),
                at(col::ATTRIBUTE_TYPES),
                at(col::EVENTS),
                at(col::LINKS),
            ])
            .unwrap();
        let text = pretty_format_batches(&[projected]).unwrap().to_string();
        let expected = "\
+------------------+------------------+------------------------------------------------------------+-----------------------------------------------+----------------------------------------------------------------------------------------------------------------------------------------------+---------------------------------------------------------------------------------------------------------------------------------------------------------------------------+
| span_id          | parent_span_id   | attributes                                                 | attribute_types                               | events                                                                                                                                       | links                                                                                                                                                                     |
+------------------+------------------+------------------------------------------------------------+-----------------------------------------------+----------------------------------------------------------------------------------------------------------------------------------------------+---------------------------------------------------------------------------------------------------------------------------------------------------------------------------+
| 0101010101010101 |                  | {http.route: /cart, http.status_code: 500, ratio: 0.25}    | {http.status_code: int, ratio: double}        | [{time: 2023-11-14T22:13:20.100Z, name: exception, attributes: {exception.type: E}, attribute_types: {}, dropped_attributes_count: 0}]        | []                                                                                                                                                                        |
| 0202020202020202 | 0101010101010101 | {}                                                         | {}                                            | []                                                                                                                                           | [{trace_id: cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd, span_id: 0303030303030303, trace_state: , flags: 0, attributes: {}, attribute_types: {}, dropped_attributes_count: 0}]      |
+------------------+------------------+------------------------------------------------------------+-----------------------------------------------+----------------------------------------------------------------------------------------------------------------------------------------------+---------------------------------------------------------------------------------------------------------------------------------------------------------------------------+";
        assert_eq!(normalize(&text), normalize(expected), "got:\n{text}");
        let scope = batch
            .project(&[at(col::SCOPE_ATTRIBUTES), at(col::SCOPE_ATTRIBUTE_TYPES)])
            .unwrap();
        let text = pretty_format_batches(&[scope]).unwrap().to_string();
        assert_eq!(
            normalize(&text)[1..],
            [
                vec![
                    "{library.tier: 2}".to_string(),
                    "{library.tier: int}".into()
                ],
                vec!["{}".into(), "{}".into()]
            ],
            "got:\n{text}"
        );
        // The builder is reusable after finish.
        b.begin_span(&span(&trace, &[4; 8], &[]));
        b.end_span();
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }

    /// Pretty tables pad columns to their widest cell; compare cell contents only.
    fn normalize(table: &str) -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    }
}
