//! Turning rows of the `spans` table back into [`SpanRecord`]s, with every attribute's original
//! type restored from the `*_types` maps.

use arrow::array::{
    Array, AsArray, ListArray, MapArray, RecordBatch, StringArray, StructArray, UInt32Array,
};
use arrow::datatypes::TimestampNanosecondType;
use spanlake_storage::schema::col;

use crate::assemble::{Attribute, SpanEvent, SpanLink, SpanRecord};
use crate::{Error, Result};

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::Internal(format!("column {name} missing from spans row")))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Internal(format!("column {name} is not text")))
}

fn text(array: &StringArray, i: usize) -> String {
    if array.is_null(i) {
        String::new()
    } else {
        array.value(i).to_string()
    }
}

/// The attributes of row `i` of a values map and its types map.
fn attributes(values: &MapArray, types: &MapArray, i: usize) -> Vec<Attribute> {
    let entries = values.value(i);
    let keys = entries.column(0).as_string::<i32>();
    let vals = entries.column(1).as_string::<i32>();
    let type_entries = types.value(i);
    let type_keys = type_entries.column(0).as_string::<i32>();
    let type_vals = type_entries.column(1).as_string::<i32>();
    (0..keys.len())
        .map(|k| {
            let key = keys.value(k);
            let r#type = (0..type_keys.len())
                .find(|t| type_keys.value(*t) == key)
                .map_or("string", |t| type_vals.value(t));
            Attribute {
                key: key.to_string(),
                value: text(vals, k),
                r#type: r#type.to_string(),
            }
        })
        .collect()
}

fn struct_field<'a>(s: &'a StructArray, name: &str) -> Result<&'a dyn Array> {
    s.column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::Internal(format!("field {name} missing")))
}

fn events(list: &ListArray, i: usize) -> Result<Vec<SpanEvent>> {
    let value = list.value(i);
    let items = value.as_struct();
    let time = struct_field(items, "time")?.as_primitive::<TimestampNanosecondType>();
    let name = struct_field(items, "name")?.as_string::<i32>();
    let attrs = struct_field(items, "attributes")?.as_map();
    let types = struct_field(items, "attribute_types")?.as_map();
    Ok((0..items.len())
        .map(|e| SpanEvent {
            time_ns: time.value(e),
            name: name.value(e).to_string(),
            attributes: attributes(attrs, types, e),
        })
        .collect())
}

fn links(list: &ListArray, i: usize) -> Result<Vec<SpanLink>> {
    let value = list.value(i);
    let items = value.as_struct();
    let trace_id = struct_field(items, "trace_id")?.as_string::<i32>();
    let span_id = struct_field(items, "span_id")?.as_string::<i32>();
    let trace_state = struct_field(items, "trace_state")?.as_string::<i32>();
    let attrs = struct_field(items, "attributes")?.as_map();
    let types = struct_field(items, "attribute_types")?.as_map();
    Ok((0..items.len())
        .map(|l| SpanLink {
            trace_id: trace_id.value(l).to_string(),
            span_id: span_id.value(l).to_string(),
            trace_state: trace_state.value(l).to_string(),
            attributes: attributes(attrs, types, l),
        })
        .collect())
}

/// Converts full rows of the `spans` table (all columns) into span records.
pub fn span_records(batches: &[RecordBatch]) -> Result<Vec<SpanRecord>> {
    let mut out = Vec::new();
    for batch in batches {
        let trace_id = strings(batch, col::TRACE_ID)?;
        let span_id = strings(batch, col::SPAN_ID)?;
        let parent = strings(batch, col::PARENT_SPAN_ID)?;
        let trace_state = strings(batch, col::TRACE_STATE)?;
        let service = strings(batch, col::SERVICE_NAME)?;
        let name = strings(batch, col::SPAN_NAME)?;
        let kind = strings(batch, col::SPAN_KIND)?;
        let start = column(batch, col::START_TIME)?.as_primitive::<TimestampNanosecondType>();
        let end = column(batch, col::END_TIME)?.as_primitive::<TimestampNanosecondType>();
        let status = strings(batch, col::STATUS_CODE)?;
        let message = strings(batch, col::STATUS_MESSAGE)?;
        let attrs = column(batch, col::ATTRIBUTES)?.as_map();
        let attr_types = column(batch, col::ATTRIBUTE_TYPES)?.as_map();
        let res = column(batch, col::RESOURCE_ATTRIBUTES)?.as_map();
        let res_types = column(batch, col::RESOURCE_ATTRIBUTE_TYPES)?.as_map();
        let scope_name = strings(batch, col::SCOPE_NAME)?;
        let scope_version = strings(batch, col::SCOPE_VERSION)?;
        // NULL in spans stored before schema version 4.
        let scope_attrs = column(batch, col::SCOPE_ATTRIBUTES)?.as_map();
        let scope_types = column(batch, col::SCOPE_ATTRIBUTE_TYPES)?.as_map();
        let event_list = column(batch, col::EVENTS)?.as_list::<i32>();
        let link_list = column(batch, col::LINKS)?.as_list::<i32>();
        let flags: &UInt32Array = column(batch, col::FLAGS)?.as_primitive();
        for i in 0..batch.num_rows() {
            out.push(SpanRecord {
                trace_id: text(trace_id, i),
                span_id: text(span_id, i),
                parent_span_id: (!parent.is_null(i)).then(|| parent.value(i).to_string()),
                trace_state: text(trace_state, i),
                service_name: text(service, i),
                span_name: text(name, i),
                span_kind: text(kind, i),
                start_ns: start.value(i),
                end_ns: end.value(i),
                status_code: text(status, i),
                status_message: text(message, i),
                attributes: attributes(attrs, attr_types, i),
                resource_attributes: attributes(res, res_types, i),
                scope_name: text(scope_name, i),
                scope_version: text(scope_version, i),
                scope_attributes: if scope_attrs.is_null(i) {
                    Vec::new()
                } else {
                    attributes(scope_attrs, scope_types, i)
                },
                events: events(event_list, i)?,
                links: links(link_list, i)?,
                flags: flags.value(i),
            });
        }
    }
    Ok(out)
}
