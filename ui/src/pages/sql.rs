//! `/sql`: read-only SQL over the spans, with examples, a result table and a CSV download. The
//! query lives in the URL (`/sql?q=...`), so a result can be shared as a link.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{encode, param};
use crate::api::{error_text, run_sql};
use crate::app::ErrorBox;
use crate::format;
use crate::model::SqlResult;

const EXAMPLES: [(&str, &str); 5] = [
    (
        "Slowest operations in the last hour",
        "SELECT service_name, span_name, count(*) AS spans,\n  approx_percentile_cont(duration_ns, 0.95) / 1e6 AS p95_ms\nFROM spans\nWHERE start_time > now() - INTERVAL '1 hour'\nGROUP BY 1, 2\nORDER BY p95_ms DESC\nLIMIT 20",
    ),
    (
        "Error rate per service",
        "SELECT service_name, count(*) AS spans,\n  avg(CASE WHEN status_code = 'ERROR' THEN 1.0 ELSE 0.0 END) AS error_rate\nFROM spans\nWHERE start_time > now() - INTERVAL '1 hour'\nGROUP BY 1\nORDER BY error_rate DESC",
    ),
    (
        "Recent errors with their messages",
        "SELECT start_time, service_name, span_name, status_message, trace_id\nFROM spans\nWHERE status_code = 'ERROR'\nORDER BY start_time DESC\nLIMIT 50",
    ),
    (
        "HTTP routes by status code",
        "SELECT attributes['http.route'] AS route,\n  attributes['http.response.status_code'] AS status, count(*) AS n\nFROM spans\nWHERE span_kind = 'SERVER' AND attributes['http.route'] IS NOT NULL\nGROUP BY 1, 2\nORDER BY n DESC\nLIMIT 50",
    ),
    (
        "Service dependencies",
        "SELECT * FROM service_graph('1h') ORDER BY calls DESC",
    ),
];

#[component]
pub fn SqlPage() -> impl IntoView {
    let query = use_query_map();
    let sql = Memo::new(move |_| param(&query.read(), "q"));
    let result = Resource::new(
        move || sql.get(),
        |q| async move {
            if q.trim().is_empty() {
                Ok(None)
            } else {
                run_sql(q).await.map(Some)
            }
        },
    );
    let initial = sql.get_untracked();
    let text = if initial.trim().is_empty() {
        EXAMPLES[0].1.to_string()
    } else {
        initial
    };
    view! {
        <Title text="SQL · Spanlake"/>
        <section class="sql-page">
            <form class="sql-form" method="get" action="/sql" id="sql-form">
                <textarea
                    name="q"
                    id="sql"
                    rows="8"
                    spellcheck="false"
                    aria-label="SQL query"
                    onkeydown="if((event.ctrlKey||event.metaKey)&&event.key==='Enter'){this.form.submit();event.preventDefault()}"
                >
                    {text}
                </textarea>
                <div class="sql-actions">
                    <button type="submit" class="primary">"Run (Ctrl+Enter)"</button>
                    <span class="muted">
                        "Read-only: the " <code>"spans"</code> " table, "
                        <code>"trace_tree(id)"</code> " and " <code>"service_graph(lookback)"</code> "."
                    </span>
                </div>
            </form>
            <div class="examples">
                <b>"Examples: "</b>
                {EXAMPLES
                    .iter()
                    .map(|(title, q)| view! { <a href=format!("/sql?q={}", encode(q))>{*title}</a> })
                    .collect_view()}
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Running…"</p> }>
                {move || Suspend::new(async move {
                    match result.await {
                        Ok(None) => ().into_any(),
                        Ok(Some(r)) => view! { <ResultTable result=r sql=sql.get_untracked()/> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ResultTable(result: SqlResult, sql: String) -> impl IntoView {
    let trace_column = result.columns.iter().position(|(n, _)| n == "trace_id");
    view! {
        <p class="summary" id="sql-summary">
            {format::count(result.rows.len() as i64)} " rows"
            {result.truncated.then_some(" (truncated)")}
            " · " {result.elapsed_ms} " ms · read " {format::count(result.rows_read as i64)} " rows, "
            {format::bytes(result.bytes_read)} " · "
            <a href=format!("/api/sql?format=csv&download=1&q={}", encode(&sql)) download="spanlake.csv">"Download CSV"</a>
        </p>
        <div class="table-scroll">
            <table class="grid" id="sql-result">
                <thead>
                    <tr>
                        {result.columns.iter().map(|(name, kind)| view! {
                            <th title=kind.clone()>{name.clone()}</th>
                        }).collect_view()}
                    </tr>
                </thead>
                <tbody>
                    {result.rows.into_iter().map(|row| view! {
                        <tr>
                            {row.into_iter().enumerate().map(|(c, cell)| {
                                let link = (Some(c) == trace_column).then(|| cell.clone()).flatten();
                                match (cell, link) {
                                    (Some(_), Some(id)) => view! { <td><a href=format!("/trace/{id}")><code>{id.clone()}</code></a></td> }.into_any(),
                                    (Some(v), None) => view! { <td>{v}</td> }.into_any(),
                                    (None, _) => view! { <td class="null">"NULL"</td> }.into_any(),
                                }
                            }).collect_view()}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
