//! `/search`: find traces by service, operation, attributes, duration and errors; a scatter of
//! duration over time and the list of hits, newest first. The form is a plain GET form, so the
//! whole query lives in the URL.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{encode, param};
use crate::api::{error_text, operations, search, services};
use crate::app::{ErrorBox, ServiceTag};
use crate::format;
use crate::model::{SearchForm, SearchResults, TraceHit};

pub const LOOKBACKS: [(&str, &str); 6] = [
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
];

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let form = Memo::new(move |_| {
        let q = query.read();
        SearchForm {
            service: param(&q, "service"),
            operation: param(&q, "operation"),
            attrs: param(&q, "attrs"),
            min_duration: param(&q, "min_duration"),
            max_duration: param(&q, "max_duration"),
            errors: matches!(param(&q, "errors").as_str(), "true" | "on" | "1"),
            lookback: param(&q, "lookback"),
            limit: param(&q, "limit"),
        }
    });
    let results = Resource::new(move || form.get(), |f| async move { search(f).await });
    let service_list = Resource::new(|| (), |_| async { services().await });
    let service = RwSignal::new(form.get_untracked().service);
    let operation_list = Resource::new(
        move || service.get(),
        |s| async move {
            if s.is_empty() {
                Ok(Vec::new())
            } else {
                operations(s).await
            }
        },
    );
    let initial = form.get_untracked();
    let lookback = if initial.lookback.is_empty() {
        "1h".to_string()
    } else {
        initial.lookback.clone()
    };

    view! {
        <Title text="Search · Spanlake"/>
        <section class="search-page">
            <form class="filters" method="get" action="/search" id="search-form">
                <label>
                    "Service"
                    <Suspense fallback=|| view! { <select name="service" disabled=true></select> }>
                        {move || Suspend::new(async move {
                            let names = service_list.await.unwrap_or_default();
                            let current = form.get_untracked().service;
                            view! {
                                <select
                                    name="service"
                                    id="service"
                                    on:change=move |ev| service.set(event_target_value(&ev))
                                >
                                    <option value="" selected=current.is_empty()>"All services"</option>
                                    {names
                                        .into_iter()
                                        .map(|n| {
                                            let selected = n == current;
                                            view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
                                        })
                                        .collect_view()}
                                </select>
                            }
                        })}
                    </Suspense>
                </label>
                <label>
                    "Operation"
                    <Transition fallback=|| view! { <select name="operation" disabled=true></select> }>
                        {move || Suspend::new(async move {
                            let names = operation_list.await.unwrap_or_default();
                            let current = form.get_untracked().operation;
                            view! {
                                <select name="operation" id="operation">
                                    <option value="" selected=current.is_empty()>"All operations"</option>
                                    {names
                                        .into_iter()
                                        .map(|n| {
                                            let selected = n == current;
                                            view! { <option value=n.clone() selected=selected>{n.clone()}</option> }
                                        })
                                        .collect_view()}
                                </select>
                            }
                        })}
                    </Transition>
                </label>
                <label class="wide">
                    "Attributes"
                    <input
                        name="attrs"
                        value=initial.attrs.clone()
                        placeholder="http.response.status_code=500 cloud.region=eu-west-1"
                        spellcheck="false"
                    />
                </label>
                <label>
                    "Min duration"
                    <input name="min_duration" value=initial.min_duration.clone() placeholder="100ms" size="7"/>
                </label>
                <label>
                    "Max duration"
                    <input name="max_duration" value=initial.max_duration.clone() placeholder="5s" size="7"/>
                </label>
                <label>
                    "Time range"
                    <select name="lookback">
                        {LOOKBACKS
                            .iter()
                            .map(|(value, text)| {
                                view! { <option value=*value selected=*value == lookback>{*text}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Limit"
                    <input name="limit" value=initial.limit.clone() placeholder="20" size="4"/>
                </label>
                <label class="check">
                    <input type="checkbox" name="errors" value="true" checked=initial.errors/>
                    "Errors only"
                </label>
                <button type="submit" class="primary">"Find traces"</button>
            </form>
            <Suspense fallback=|| view! { <p class="loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    match results.await {
                        Ok(r) => view! { <Results results=r/> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Results(results: SearchResults) -> impl IntoView {
    if results.hits.is_empty() {
        return view! {
            <div class="empty">
                <p>"No traces match in this time range."</p>
                <p class="hint">
                    "Widen the time range, remove a filter, or point an OpenTelemetry SDK at "
                    <code>"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317"</code> "."
                </p>
            </div>
        }
        .into_any();
    }
    let longest = results
        .hits
        .iter()
        .map(|h| h.duration_ns)
        .max()
        .unwrap_or(1)
        .max(1);
    let count = results.hits.len();
    view! {
        <Scatter hits=results.hits.clone()/>
        <p class="summary">
            {format::count(count as i64)} " traces, newest first · " {results.elapsed_ms} " ms"
        </p>
        <ol class="hits">
            {results
                .hits
                .into_iter()
                .map(|h| view! { <Hit hit=h longest=longest/> })
                .collect_view()}
        </ol>
    }
    .into_any()
}

#[component]
fn Hit(hit: TraceHit, longest: i64) -> impl IntoView {
    let href = format!("/trace/{}", hit.trace_id);
    let width = hit.duration_ns as f64 / longest as f64 * 100.0;
    let root = hit.root_service.clone().unwrap_or_else(|| "?".into());
    view! {
        <li class="hit" class:failed={hit.error_count > 0}>
            <a href=href>
                <div class="hit-head">
                    <ServiceTag name=root/>
                    <span class="hit-name">
                        {hit.root_name.clone().unwrap_or_else(|| "(root span not received)".into())}
                    </span>
                    <span class="hit-duration">{format::duration(hit.duration_ns)}</span>
                </div>
                <div class="hit-bar" style=format!("width:{width:.2}%")></div>
                <div class="hit-meta">
                    <span>{format::count(hit.span_count)} " spans"</span>
                    {(hit.error_count > 0)
                        .then(|| view! { <span class="badge error">{hit.error_count} " errors"</span> })}
                    <span class="muted">{format::timestamp(hit.start_ns)}</span>
                    <code class="muted">{hit.trace_id.clone()}</code>
                </div>
                <div class="hit-services">
                    {hit
                        .services
                        .iter()
                        .map(|(name, spans)| view! { <ServiceTag name=name.clone() count=*spans/> })
                        .collect_view()}
                </div>
            </a>
        </li>
    }
}

/// Duration over time: one dot per trace; red dots failed; a dot opens its trace.
#[component]
fn Scatter(hits: Vec<TraceHit>) -> impl IntoView {
    let first = hits.iter().map(|h| h.start_ns).min().unwrap_or(0);
    let last = hits.iter().map(|h| h.start_ns).max().unwrap_or(0);
    let span = (last - first).max(1) as f64;
    let longest = hits.iter().map(|h| h.duration_ns).max().unwrap_or(1).max(1) as f64;
    view! {
        <div class="scatter" aria-label="Trace duration over time">
            <span class="axis y-top">{format::duration(longest as i64)}</span>
            <span class="axis y-bottom">"0"</span>
            <span class="axis x-left">{format::time_of_day(first)}</span>
            <span class="axis x-right">{format::time_of_day(last)}</span>
            {hits
                .iter()
                .map(|h| {
                    // Inset so dots at the extremes stay whole.
                    let x = if last == first { 50.0 } else { 2.0 + (h.start_ns - first) as f64 / span * 96.0 };
                    let y = 5.0 + h.duration_ns as f64 / longest * 85.0;
                    let title = format!(
                        "{} · {} · {} spans · {}",
                        h.root_name.clone().unwrap_or_default(),
                        format::duration(h.duration_ns),
                        h.span_count,
                        format::timestamp(h.start_ns)
                    );
                    view! {
                        <a
                            class="point"
                            class:failed={h.error_count > 0}
                            href=format!("/trace/{}", h.trace_id)
                            title=title
                            style=format!("left:{x:.2}%;bottom:{y:.2}%")
                        ></a>
                    }
                })
                .collect_view()}
        </div>
    }
}

/// The search URL for a service's traces, used by other pages.
pub fn search_href(service: &str, errors: bool) -> String {
    let mut href = format!("/search?service={}", encode(service));
    if errors {
        href.push_str("&errors=true");
    }
    href
}
