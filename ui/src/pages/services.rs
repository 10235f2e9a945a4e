//! `/services`: the service map, and `/services/{name}`: one service's RED charts per operation
//! with its slowest and failing traces.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::param;
use super::search::{LOOKBACKS, search_href};
use crate::api::{error_text, get_service_map, get_service_overview};
use crate::app::{ErrorBox, ServiceTag};
use crate::format;
use crate::graph::{NODE_HEIGHT, NODE_WIDTH, layout};
use crate::model::{OperationSeries, ServiceMap, ServiceOverview, TraceHit};

fn lookback_of(raw: String) -> String {
    if raw.is_empty() {
        "1h".to_string()
    } else {
        raw
    }
}

#[component]
fn LookbackForm(action: String, current: String) -> impl IntoView {
    view! {
        <form class="filters inline" method="get" action=action>
            <label>
                "Time range"
                <select name="lookback" onchange="this.form.submit()">
                    {LOOKBACKS
                        .iter()
                        .map(|(value, text)| view! { <option value=*value selected=*value == current>{*text}</option> })
                        .collect_view()}
                </select>
            </label>
            <noscript><button type="submit">"Show"</button></noscript>
        </form>
    }
}

#[component]
pub fn ServicesPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| lookback_of(param(&query.read(), "lookback")));
    let map = Resource::new(
        move || lookback.get(),
        |l| async move { get_service_map(l).await },
    );
    view! {
        <Title text="Service map · Spanlake"/>
        <section class="services-page">
            <div class="page-head">
                <h1>"Service map"</h1>
                <LookbackForm action="/services".into() current=lookback.get_untracked()/>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Drawing the map…"</p> }>
                {move || Suspend::new(async move {
                    match map.await {
                        Ok(m) => view! { <Map map=m/> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Map(map: ServiceMap) -> impl IntoView {
    if map.services.is_empty() && map.edges.is_empty() {
        return view! { <p class="empty">"No spans in this time range."</p> }.into_any();
    }
    let layout = layout(&map);
    let max_calls = map.edges.iter().map(|e| e.calls).max().unwrap_or(1).max(1) as f64;
    let secs = map.window_secs.max(1.0);
    let edges = map.edges.iter().zip(&layout.edges).map(|(e, path)| {
        let error_rate = e.errors as f64 / e.calls.max(1) as f64;
        let width = 1.5 + 4.5 * (e.calls as f64 / max_calls).sqrt();
        let label = format!(
            "{} · {} err · p95 {}",
            format::rate(e.calls as f64 / secs),
            format::percent(error_rate),
            format::duration(e.p95_ns as i64)
        );
        view! {
            <g class="edge" class:failing={e.errors > 0}>
                <title>{format!("{} → {}: {} calls, {} errors", e.parent, e.child, e.calls, e.errors)}</title>
                <path d=path.d.clone() stroke-width=format!("{width:.1}") marker-end="url(#arrow)"></path>
                <text x=format!("{:.1}", path.label_x) y=format!("{:.1}", path.label_y) text-anchor="middle">{label}</text>
            </g>
        }
    }).collect_view();
    let nodes = layout.nodes.iter().map(|n| {
        let calls_in: i64 = map.edges.iter().filter(|e| e.child == n.name).map(|e| e.calls).sum();
        let errors_in: i64 = map.edges.iter().filter(|e| e.child == n.name).map(|e| e.errors).sum();
        view! {
            <a
                class="node"
                class:failing={errors_in > 0}
                href=format!("/services/{}", super::encode(&n.name))
                data-service=n.name.clone()
                style=format!(
                    "left:{:.1}px;top:{:.1}px;width:{NODE_WIDTH}px;height:{NODE_HEIGHT}px;--svc:{}",
                    n.x,
                    n.y,
                    crate::color::service(&n.name)
                )
            >
                <b>{n.name.clone()}</b>
                <small>
                    {if calls_in > 0 {
                        format!("{} in · {} err", format::count(calls_in), format::count(errors_in))
                    } else {
                        "entry point".to_string()
                    }}
                </small>
            </a>
        }
    }).collect_view();
    let mut sorted = map.edges.clone();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.calls));
    view! {
        <div class="map-scroll">
            <div class="map" style=format!("width:{:.0}px;height:{:.0}px", layout.width, layout.height)>
                <svg
                    width=format!("{:.0}", layout.width)
                    height=format!("{:.0}", layout.height)
                    viewBox=format!("0 0 {:.0} {:.0}", layout.width, layout.height)
                >
                    <defs>
                        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" orient="auto-start-reverse">
                            <path d="M0,0 L10,5 L0,10 z" class="arrow"></path>
                        </marker>
                    </defs>
                    {edges}
                </svg>
                {nodes}
            </div>
        </div>
        <table class="grid" id="edges">
            <thead>
                <tr><th>"Caller"</th><th>"Callee"</th><th>"Calls"</th><th>"Rate"</th><th>"Errors"</th><th>"p95"</th></tr>
            </thead>
            <tbody>
                {sorted.into_iter().map(|e| view! {
                    <tr class:failing={e.errors > 0}>
                        <td><a href=format!("/services/{}", super::encode(&e.parent))><ServiceTag name=e.parent.clone()/></a></td>
                        <td><a href=format!("/services/{}", super::encode(&e.child))><ServiceTag name=e.child.clone()/></a></td>
                        <td class="num">{format::count(e.calls)}</td>
                        <td class="num">{format::rate(e.calls as f64 / secs)}</td>
                        <td class="num">{format::percent(e.errors as f64 / e.calls.max(1) as f64)}</td>
                        <td class="num">{format::duration(e.p95_ns as i64)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let name = Memo::new(move |_| param(&params.read(), "name"));
    let lookback = Memo::new(move |_| lookback_of(param(&query.read(), "lookback")));
    let overview = Resource::new(
        move || (name.get(), lookback.get()),
        |(n, l)| async move { get_service_overview(n, l).await },
    );
    view! {
        <Title text=move || format!("{} · Spanlake", name.get())/>
        <section class="service-page">
            <div class="page-head">
                <h1><ServiceTag name=name.get_untracked()/></h1>
                <a href=move || search_href(&name.get(), false)>"Search its traces"</a>
                <LookbackForm action=format!("/services/{}", super::encode(&name.get_untracked())) current=lookback.get_untracked()/>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Computing RED metrics…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(o) => view! { <Overview overview=o/> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Overview(overview: ServiceOverview) -> impl IntoView {
    if overview.operations.is_empty() {
        return view! {
            <p class="empty">"No requests to " {overview.service.clone()} " in this time range."</p>
        }
        .into_any();
    }
    let (from, to) = (overview.window_start_ns, overview.window_end_ns);
    view! {
        <div class="ops">
            {overview.operations.into_iter().map(|o| view! { <OperationCharts series=o from=from to=to/> }).collect_view()}
        </div>
        <div class="two">
            <div>
                <h2>"Slowest traces"</h2>
                <TraceList hits=overview.slowest/>
            </div>
            <div>
                <h2>"Failing traces"</h2>
                <TraceList hits=overview.failing/>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn TraceList(hits: Vec<TraceHit>) -> impl IntoView {
    if hits.is_empty() {
        return view! { <p class="muted">"None."</p> }.into_any();
    }
    view! {
        <ul class="trace-list">
            {hits.into_iter().map(|h| view! {
                <li>
                    <a href=format!("/trace/{}", h.trace_id)>
                        <span class="hit-duration">{format::duration(h.duration_ns)}</span>
                        " " {h.root_name.clone().unwrap_or_default()}
                        {(h.error_count > 0).then(|| view! { <span class="badge error">{h.error_count} " errors"</span> })}
                        <span class="muted">" " {format::timestamp(h.start_ns)}</span>
                    </a>
                </li>
            }).collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
fn OperationCharts(series: OperationSeries, from: i64, to: i64) -> impl IntoView {
    let total: i64 = series.points.iter().map(|p| p.requests).sum();
    let errors: i64 = series.points.iter().map(|p| p.errors).sum();
    let times: Vec<i64> = series.points.iter().map(|p| p.bucket_start_ns).collect();
    let rate: Vec<f64> = series.points.iter().map(|p| p.rate).collect();
    let error_rate: Vec<f64> = series.points.iter().map(|p| p.error_rate * 100.0).collect();
    let p50: Vec<f64> = series.points.iter().map(|p| p.p50_ns).collect();
    let p95: Vec<f64> = series.points.iter().map(|p| p.p95_ns).collect();
    let p99: Vec<f64> = series.points.iter().map(|p| p.p99_ns).collect();
    view! {
        <div class="op-card">
            <h3>
                {series.operation.clone()}
                <span class="muted">" " {format::count(total)} " requests, " {format::count(errors)} " errors"</span>
            </h3>
            <div class="charts">
                <Chart title="Rate" times=times.clone() from=from to=to lines=vec![("rate", rate)] unit=Unit::Rate/>
                <Chart title="Errors" times=times.clone() from=from to=to lines=vec![("errors", error_rate)] unit=Unit::Percent/>
                <Chart title="Latency p50 / p95 / p99" times=times from=from to=to lines=vec![("p50", p50), ("p95", p95), ("p99", p99)] unit=Unit::Nanos/>
            </div>
        </div>
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Rate,
    Percent,
    Nanos,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Rate => format::rate(v),
            Unit::Percent => format!("{v:.1}%"),
            Unit::Nanos => format::duration(v as i64),
        }
    }
}

/// A small line chart over the time window; each line a CSS class.
#[component]
fn Chart(
    title: &'static str,
    times: Vec<i64>,
    from: i64,
    to: i64,
    lines: Vec<(&'static str, Vec<f64>)>,
    unit: Unit,
) -> impl IntoView {
    const W: f64 = 300.0;
    const H: f64 = 90.0;
    let top = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let span = (to - from).max(1) as f64;
    let paths = lines
        .iter()
        .map(|(class, values)| {
            let points: Vec<String> = times
                .iter()
                .zip(values)
                .map(|(&t, &v)| {
                    format!(
                        "{:.1},{:.1}",
                        (t - from) as f64 / span * W,
                        H - (v / top * H).clamp(0.0, H)
                    )
                })
                .collect();
            view! { <polyline class=format!("line {class}") points=points.join(" ")></polyline> }
        })
        .collect_view();
    view! {
        <figure class="chart">
            <figcaption>
                {title}
                <span class="muted">" max " {unit.format(top / 1.1)}</span>
                {(lines.len() > 1).then(|| lines.iter().map(|(class, _)| view! {
                    <span class=format!("key {class}")>{"― "}{*class}</span>
                }).collect_view())}
            </figcaption>
            <svg viewBox=format!("0 0 {W} {H}") preserveAspectRatio="none">
                <line class="axis" x1="0" y1=H.to_string() x2=W.to_string() y2=H.to_string()></line>
                {paths}
            </svg>
            <div class="chart-x">
                <span>{format::time_of_day(from)}</span>
                <span>{format::time_of_day(to)}</span>
            </div>
        </figure>
    }
}
