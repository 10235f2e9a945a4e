//! The SQL endpoint: `POST /api/sql` with `{"sql": "..."}`, or `GET /api/sql?q=...` (for links
//! and downloads; `&download=1` names the file), answered as JSON (default), CSV
//! (`?format=csv`) or an Arrow IPC stream (`?format=arrow`).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::json::writer::JsonArray;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::tenant;
use crate::{Error, QueryEngine, QueryOutput, Result};

/// Media type of Arrow IPC stream responses.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Deserialize)]
struct SqlRequest {
    sql: String,
}

#[derive(Debug, Deserialize, Default)]
struct SqlParams {
    format: Option<String>,
    /// The statement, for `GET`.
    q: Option<String>,
    /// `GET` only: answer as a file download.
    download: Option<String>,
}

/// The router serving `/api/sql`.
pub fn router(engine: Arc<QueryEngine>) -> Router {
    Router::new()
        .route("/api/sql", post(sql).get(sql_get))
        .with_state(engine)
}

async fn sql(
    State(engine): State<Arc<QueryEngine>>,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        Error::BadRequest(format!("expected a JSON body {{\"sql\": \"...\"}}: {e}"))
    })?;
    answer(&engine, &params, &headers, &request.sql).await
}

async fn sql_get(
    State(engine): State<Arc<QueryEngine>>,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
) -> Result<Response> {
    let Some(sql) = params.q.as_deref().filter(|q| !q.trim().is_empty()) else {
        return Err(Error::BadRequest(
            "missing the statement: GET /api/sql?q=SELECT...".into(),
        ));
    };
    let mut response = answer(&engine, &params, &headers, sql).await?;
    if params
        .download
        .as_deref()
        .is_some_and(|d| d == "1" || d == "true")
    {
        let extension = match params.format.as_deref() {
            Some("csv") => "csv",
            Some("arrow") => "arrows",
            _ => "json",
        };
        let disposition = format!("attachment; filename=\"spanlake.{extension}\"");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

async fn answer(
    engine: &QueryEngine,
    params: &SqlParams,
    headers: &HeaderMap,
    sql: &str,
) -> Result<Response> {
    let format = params.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "csv" | "arrow") {
        return Err(Error::BadRequest(format!(
            "unknown format {format:?}: use json, csv or arrow"
        )));
    }
    let tenant = tenant(headers)?;
    let output = engine.sql(&tenant, sql).await?;
    let mut response = match format {
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&output)?,
        )
            .into_response(),
        "arrow" => ([(header::CONTENT_TYPE, ARROW_STREAM)], to_arrow(&output)?).into_response(),
        _ => (
            [(header::CONTENT_TYPE, "application/json")],
            to_json(&output)?,
        )
            .into_response(),
    };
    if output.truncated {
        response
            .headers_mut()
            .insert("x-spanlake-truncated", HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// `{"meta": [...], "data": [...], "rows": N, "statistics": {...}}`.
pub fn to_json(output: &QueryOutput) -> Result<Vec<u8>> {
    let meta: Vec<_> = output
        .schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut data = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, JsonArray>(&mut data);
        for batch in &output.batches {
            writer.write(batch).map_err(internal)?;
        }
        writer.finish().map_err(internal)?;
    }
    if data.is_empty() {
        data.extend_from_slice(b"[]");
    }
    let statistics = serde_json::json!({
        "elapsed_ms": output.elapsed.as_secs_f64() * 1000.0,
        "rows_read": output.rows_read,
        "bytes_read": output.bytes_read,
        "truncated": output.truncated,
    });
    let mut out = Vec::with_capacity(data.len() + 256);
    out.extend_from_slice(b"{\"meta\":");
    serde_json::to_writer(&mut out, &meta).map_err(internal)?;
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(&data);
    out.extend_from_slice(format!(",\"rows\":{},\"statistics\":", output.rows).as_bytes());
    serde_json::to_writer(&mut out, &statistics).map_err(internal)?;
    out.push(b'}');
    Ok(out)
}

/// Nested columns (maps, lists) are written as their display text, since CSV has no nesting.
fn to_csv(output: &QueryOutput) -> Result<Vec<u8>> {
    let fields: Vec<Field> = output
        .schema
        .fields()
        .iter()
        .map(|f| {
            if f.data_type().is_nested() {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        if output.batches.is_empty() {
            writer
                .write(&RecordBatch::new_empty(Arc::clone(&schema)))
                .map_err(internal)?;
        }
        for batch in &output.batches {
            let columns = batch
                .columns()
                .iter()
                .map(|c| -> Result<ArrayRef> {
                    if !c.data_type().is_nested() {
                        return Ok(Arc::clone(c));
                    }
                    let fmt = ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default())
                        .map_err(internal)?;
                    let text: StringArray = (0..c.len())
                        .map(|i| (!c.is_null(i)).then(|| fmt.value(i).to_string()))
                        .collect();
                    Ok(Arc::new(text))
                })
                .collect::<Result<Vec<_>>>()?;
            let batch = RecordBatch::try_new(Arc::clone(&schema), columns).map_err(internal)?;
            writer.write(&batch).map_err(internal)?;
        }
    }
    Ok(out)
}

fn to_arrow(output: &QueryOutput) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer =
        arrow::ipc::writer::StreamWriter::try_new(&mut out, &output.schema).map_err(internal)?;
    for batch in &output.batches {
        writer.write(batch).map_err(internal)?;
    }
    writer.finish().map_err(internal)?;
    drop(writer);
    Ok(out)
}
