//! `/trace/{id}`: the waterfall of one call chain. Rows are virtualised (only the rows on screen
//! are in the DOM), subtrees collapse, the critical path and the error origin are marked, the
//! network time around each remote call is drawn, missing spans are flagged, and the selected
//! span's details are a `?span=` deep link.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{encode, param};
use crate::api::{error_text, find_spans, get_span, get_trace};
use crate::app::{ErrorBox, ServiceTag};
use crate::format;
use crate::model::{Missing, SpanDetail, Status, TraceView};
use crate::waterfall::{
    INITIAL_ROWS, ROW_HEIGHT, Scale, collapse_from_depth, index_of, minimap, reveal, step, ticks,
    visible_rows, window as row_window,
};

#[component]
pub fn TracePage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| param(&params.read(), "id").trim().to_ascii_lowercase());
    let trace = Resource::new(move || id.get(), |id| async move { get_trace(id).await });
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading trace…"</p> }>
            {move || Suspend::new(async move {
                match trace.await {
                    Ok(Some(t)) => view! { <Explorer trace=Arc::new(t)/> }.into_any(),
                    Ok(None) => view! { <TraceNotFound id=id.get_untracked()/> }.into_any(),
                    Err(e) => view! {
                        <Title text="Trace · Spanlake"/>
                        <ErrorBox message=error_text(&e)/>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn TraceNotFound(id: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Trace not found · Spanlake"/>
        <section class="empty" id="trace-not-found">
            <h1>"Trace not found"</h1>
            <p>
                "No span of trace " <code>{id}</code> " is stored (for this tenant). "
                "Spans are searchable the moment the collector acknowledges them; check the trace id, "
                "or " <a href="/search">"search recent traces"</a> "."
            </p>
        </section>
    }
}

/// What the explorer derives once per trace.
struct Derived {
    trace: TraceView,
    by_id: HashMap<String, u32>,
    critical: HashMap<u32, Vec<(i64, i64)>>,
    uninstrumented: HashMap<u32, Option<String>>,
    missing_parent: HashMap<u32, String>,
}

impl Derived {
    fn new(trace: Arc<TraceView>) -> Self {
        let trace = Arc::unwrap_or_clone(trace);
        let by_id = trace
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.clone(), i as u32))
            .collect();
        let mut critical: HashMap<u32, Vec<(i64, i64)>> = HashMap::new();
        for c in &trace.critical_path {
            critical
                .entry(c.span)
                .or_default()
                .push((c.start_ns, c.end_ns));
        }
        let mut uninstrumented = HashMap::new();
        let mut missing_parent = HashMap::new();
        for m in &trace.missing {
            match m {
                Missing::Uninstrumented { span, peer } => {
                    uninstrumented.insert(*span, peer.clone());
                }
                Missing::Parent { span, span_id } => {
                    missing_parent.insert(*span, span_id.clone());
                }
            }
        }
        Derived {
            trace,
            by_id,
            critical,
            uninstrumented,
            missing_parent,
        }
    }
}

#[component]
fn Explorer(trace: Arc<TraceView>) -> impl IntoView {
    let d = Arc::new(Derived::new(trace));
    let query = use_query_map();
    let trace_id = d.trace.trace_id.clone();

    let initial = index_of(&d.trace, &param(&query.read_untracked(), "span"));
    let selected = RwSignal::new(initial);
    let adjusted = RwSignal::new(param(&query.read_untracked(), "raw") != "1");
    let mut start_collapsed = if d.trace.spans.len() > 5000 {
        collapse_from_depth(&d.trace.spans, 3)
    } else {
        HashSet::new()
    };
    if let Some(i) = initial {
        reveal(&d.trace.spans, &mut start_collapsed, i);
    }
    let collapsed = RwSignal::new(start_collapsed);
    let visible = Memo::new({
        let d = d.clone();
        move |_| visible_rows(&d.trace.spans, &collapsed.read())
    });
    let scroll_top = RwSignal::new(0.0f64);
    let view_height = RwSignal::new(INITIAL_ROWS as f64 * ROW_HEIGHT);
    let rows_ref = NodeRef::<leptos::html::Div>::new();
    let find_text = RwSignal::new(String::new());
    let matches = RwSignal::new(HashSet::<u32>::new());

    // Keep `?span=` in the address bar in step with the selection, without a navigation.
    Effect::new({
        let d = d.clone();
        let trace_id = trace_id.clone();
        move |_| {
            let mut url = format!("/trace/{trace_id}");
            let mut sep = '?';
            if let Some(i) = selected.get() {
                url.push_str(&format!("?span={}", d.trace.spans[i as usize].span_id));
                sep = '&';
            }
            if !adjusted.get() {
                url.push(sep);
                url.push_str("raw=1");
            }
            if let Ok(history) = window().history() {
                let _ = history.replace_state_with_url(&wasm_bindgen_value(), "", Some(&url));
            }
        }
    });
    // Measure the viewport once the page is live, and bring a deep-linked span into view.
    Effect::new(move |_| {
        if let Some(el) = rows_ref.get() {
            view_height.set(f64::from(el.client_height()).max(ROW_HEIGHT));
            if let Some(i) = selected.get_untracked() {
                scroll_into_view(&el, &visible.read_untracked(), i, true);
            }
        }
    });

    let select = move |i: Option<u32>| {
        if let (Some(i), Some(el)) = (i, rows_ref.get_untracked()) {
            scroll_into_view(&el, &visible.read_untracked(), i, false);
        }
        selected.set(i);
    };
    let toggle = move |i: u32| {
        collapsed.update(|c| {
            if !c.remove(&i) {
                c.insert(i);
            }
        })
    };

    let on_key = {
        let d = d.clone();
        move |ev: leptos::ev::KeyboardEvent| {
            let current = selected.get_untracked();
            let rows = visible.read_untracked();
            let handled = match ev.key().as_str() {
                "ArrowDown" | "j" => {
                    select(step(&rows, current, 1));
                    true
                }
                "ArrowUp" | "k" => {
                    select(step(&rows, current, -1));
                    true
                }
                "PageDown" => {
                    select(step(&rows, current, 20));
                    true
                }
                "PageUp" => {
                    select(step(&rows, current, -20));
                    true
                }
                "ArrowRight" | "l" => {
                    if let Some(i) = current {
                        collapsed.update(|c| {
                            c.remove(&i);
                        });
                    }
                    true
                }
                "ArrowLeft" | "h" => {
                    if let Some(i) = current {
                        let span = &d.trace.spans[i as usize];
                        if span.children > 0 && !collapsed.read_untracked().contains(&i) {
                            collapsed.update(|c| {
                                c.insert(i);
                            });
                        } else if let Some(p) = span.parent {
                            select(Some(p));
                        }
                    }
                    true
                }
                "Enter" | " " => {
                    if let Some(i) = current {
                        toggle(i);
                    }
                    true
                }
                "Escape" => {
                    selected.set(None);
                    true
                }
                _ => false,
            };
            drop(rows);
            if handled {
                ev.prevent_default();
            }
        }
    };

    let on_find = {
        let trace_id = trace_id.clone();
        let d = d.clone();
        move |ev: leptos::ev::Event| {
            let text = event_target_value(&ev);
            find_text.set(text.clone());
            if text.trim().is_empty() {
                matches.set(HashSet::new());
                return;
            }
            let trace_id = trace_id.clone();
            let d = d.clone();
            leptos::task::spawn_local(async move {
                let found = find_spans(trace_id, text.clone()).await.unwrap_or_default();
                if find_text.get_untracked() == text {
                    matches.set(
                        found
                            .iter()
                            .filter_map(|id| d.by_id.get(id).copied())
                            .collect(),
                    );
                }
            });
        }
    };
    let next_match = {
        let d = d.clone();
        move || {
            let m = matches.read_untracked();
            if m.is_empty() {
                return;
            }
            let mut sorted: Vec<u32> = m.iter().copied().collect();
            drop(m);
            sorted.sort_unstable();
            let after = selected.get_untracked();
            let next = sorted
                .iter()
                .copied()
                .find(|&i| after.is_none_or(|a| i > a))
                .unwrap_or(sorted[0]);
            collapsed.update(|c| reveal(&d.trace.spans, c, next));
            select(Some(next));
        }
    };

    view! {
        <Title text=format!(
            "{} · {} · Spanlake",
            d.trace.root_name.clone().unwrap_or_else(|| "Trace".into()),
            format::duration(d.trace.duration_ns)
        )/>
        <section class="trace-page">
            <Summary trace=d.clone() selected=selected/>
            <div class="toolbar">
                <label class="check" title="Correct clock skew between hosts (as Jaeger does)">
                    <input
                        type="checkbox"
                        id="adjusted"
                        checked=move || adjusted.get()
                        on:change=move |ev| adjusted.set(event_target_checked(&ev))
                    />
                    "Clock-adjusted"
                </label>
                <button id="expand-all" on:click=move |_| collapsed.set(HashSet::new())>"Expand all"</button>
                <button
                    id="collapse-all"
                    on:click={
                        let d = d.clone();
                        move |_| collapsed.set(collapse_from_depth(&d.trace.spans, 0))
                    }
                >
                    "Collapse all"
                </button>
                <input
                    id="find"
                    class="find"
                    type="search"
                    placeholder="Find in trace: name, service, attribute…"
                    aria-label="Find in trace"
                    on:input=on_find
                    on:keydown=move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" {
                            ev.prevent_default();
                            next_match();
                        }
                    }
                />
                <span class="matches" id="match-count">
                    {move || {
                        let n = matches.read().len();
                        if find_text.read().trim().is_empty() {
                            String::new()
                        } else {
                            format!("{n} match{}", if n == 1 { "" } else { "es" })
                        }
                    }}
                </span>
                <span class="legend">
                    <i class="lg critical"></i> "critical path "
                    <i class="lg gap"></i> "network "
                    <i class="lg origin"></i> "error origin"
                </span>
            </div>
            <div class="trace-body" class:with-details=move || selected.get().is_some()>
                <div class="waterfall">
                    <Minimap trace=d.clone() adjusted=adjusted scroll_top=scroll_top view_height=view_height visible=visible rows_ref=rows_ref/>
                    <div class="ruler">
                        <div class="ruler-name">"Service · operation"</div>
                        <div class="ruler-time">
                            {
                                let d = d.clone();
                                move || {
                                    let scale = Scale::of(&d.trace, adjusted.get());
                                    ticks(&scale, 5)
                                        .into_iter()
                                        .map(|(x, label)| {
                                            view! { <span class="tick" style=format!("left:{x:.2}%")>{label}</span> }
                                        })
                                        .collect_view()
                                }
                            }
                        </div>
                    </div>
                    <div
                        class="rows"
                        id="rows"
                        tabindex="0"
                        node_ref=rows_ref
                        on:scroll=move |ev| {
                            let el = event_target::<web_sys::Element>(&ev);
                            scroll_top.set(f64::from(el.scroll_top()));
                        }
                        on:keydown=on_key
                    >
                        <div
                            class="rows-inner"
                            style=move || format!("height:{}px", visible.read().len() as f64 * ROW_HEIGHT)
                        >
                            {
                                let d = d.clone();
                                move || {
                                    let rows = visible.read();
                                    let range = row_window(rows.len(), scroll_top.get(), view_height.get());
                                    let adjusted = adjusted.get();
                                    let scale = Scale::of(&d.trace, adjusted);
                                    let found = matches.read();
                                    let chosen = selected.get();
                                    let closed = collapsed.read();
                                    range
                                        .map(|pos| {
                                            let i = rows[pos];
                                            row_view(
                                                &d,
                                                i,
                                                pos,
                                                &scale,
                                                adjusted,
                                                RowState {
                                                    selected: chosen == Some(i),
                                                    matched: found.contains(&i),
                                                    collapsed: closed.contains(&i),
                                                },
                                                selected,
                                                collapsed,
                                            )
                                        })
                                        .collect_view()
                                }
                            }
                        </div>
                    </div>
                </div>
                {
                    let d = d.clone();
                    move || {
                        selected
                            .get()
                            .map(|i| view! { <Details trace=d.clone() index=i on_close=move || selected.set(None)/> })
                    }
                }
            </div>
        </section>
    }
}

fn wasm_bindgen_value() -> leptos::wasm_bindgen::JsValue {
    leptos::wasm_bindgen::JsValue::NULL
}

/// Scrolls the rows so that span `i` is visible (centred when `center`).
fn scroll_into_view(el: &web_sys::HtmlDivElement, rows: &[u32], i: u32, center: bool) {
    let Some(pos) = rows.iter().position(|&r| r == i) else {
        return;
    };
    let top = pos as f64 * ROW_HEIGHT;
    let height = f64::from(el.client_height());
    let current = f64::from(el.scroll_top());
    if center {
        el.set_scroll_top((top - height / 2.0).max(0.0) as i32);
    } else if top < current {
        el.set_scroll_top(top as i32);
    } else if top + ROW_HEIGHT > current + height {
        el.set_scroll_top((top + ROW_HEIGHT - height) as i32);
    }
}

struct RowState {
    selected: bool,
    matched: bool,
    collapsed: bool,
}

#[allow(clippy::too_many_arguments)]
fn row_view(
    d: &Arc<Derived>,
    i: u32,
    pos: usize,
    scale: &Scale,
    adjusted: bool,
    state: RowState,
    selected: RwSignal<Option<u32>>,
    collapsed: RwSignal<HashSet<u32>>,
) -> impl IntoView + use<> {
    let s = &d.trace.spans[i as usize];
    let service = d.trace.services[s.service as usize].name.clone();
    let color = crate::color::service(&service);
    let start = s.start(adjusted);
    let end = s.end(adjusted);
    let left = scale.x(start);
    let width = scale.width(start, end);
    let shift = if adjusted { 0 } else { s.shift_ns };
    let critical = d
        .critical
        .get(&i)
        .map(|segments| {
            segments
                .iter()
                .map(|&(a, b)| {
                    let (a, b) = (a - shift, b - shift);
                    view! {
                        <i class="crit" style=format!("left:{:.3}%;width:{:.3}%", scale.x(a), scale.width(a, b))></i>
                    }
                })
                .collect_view()
        });
    let gaps = s.hop.map(|h| {
        let before_from = start - h.gap_before_ns.max(0);
        let after_to = end + h.gap_after_ns.max(0);
        view! {
            <i class="gap" title=format!("request on the wire / queued: {}", format::duration(h.gap_before_ns))
                style=format!("left:{:.3}%;width:{:.3}%", scale.x(before_from), scale.x(start) - scale.x(before_from))></i>
            <i class="gap" title=format!("response on the wire: {}", format::duration(h.gap_after_ns))
                style=format!("left:{:.3}%;width:{:.3}%", scale.x(end), scale.x(after_to) - scale.x(end))></i>
        }
    });
    let ghost = d.uninstrumented.get(&i).map(|peer| {
        let label = match peer {
            Some(p) => format!("no span from {p}"),
            None => "callee sent no span".to_string(),
        };
        (
            view! {
                <i class="ghost" title="The callee of this call is not instrumented, or its spans were lost"
                    style=format!("left:{left:.3}%;width:{width:.3}%")></i>
            },
            view! { <span class="badge missing" title="The callee of this call is not instrumented, or its spans were lost">{label}</span> },
        )
    });
    let (ghost, ghost_label) = match ghost {
        Some((g, l)) => (Some(g), Some(l)),
        None => (None, None),
    };
    let parent_missing = d.missing_parent.get(&i).map(|p| {
        view! { <span class="badge missing" title="This span's parent never arrived">"parent " {p.chars().take(8).collect::<String>()} "… missing"</span> }
    });
    let label_left = left + width < 75.0;
    let duration = format::duration(end - start);
    let has_children = s.children > 0;
    let error = s.status == Status::Error;
    let title = format!(
        "{service}: {} ({}, {})",
        s.name,
        s.kind.to_lowercase(),
        duration
    );
    view! {
        <div
            class="row"
            class:selected=state.selected
            class:matched=state.matched
            class:error=error
            class:origin=s.error_origin
            data-span=s.span_id.clone()
            style=format!("top:{}px;--svc:{color}", pos as f64 * ROW_HEIGHT)
            on:click=move |_| selected.set(Some(i))
        >
            <div class="name" style=format!("padding-left:{}px", 6 + (s.depth.min(40) * 14))>
                {if has_children {
                    view! {
                        <button
                            class="toggle"
                            aria-label=if state.collapsed { "Expand" } else { "Collapse" }
                            aria-expanded=if state.collapsed { "false" } else { "true" }
                            on:click=move |ev| {
                                ev.stop_propagation();
                                collapsed.update(|c| {
                                    if !c.remove(&i) {
                                        c.insert(i);
                                    }
                                });
                            }
                        >
                            {if state.collapsed { "▸" } else { "▾" }}
                        </button>
                    }
                    .into_any()
                } else {
                    view! { <span class="toggle leaf"></span> }.into_any()
                }}
                <i class="dot"></i>
                <span class="svc-name">{service}</span>
                <span class="op" title=title>{s.name.clone()}</span>
                {state.collapsed.then(|| view! { <span class="badge">"+" {s.children}</span> })}
                {s.error_origin.then(|| view! { <span class="badge error" title="Failed here: no error below this span">"error origin"</span> })}
                {s.orphan.then(|| view! { <span class="badge warn">"orphan"</span> })}
                {s.cycle_broken.then(|| view! { <span class="badge warn">"cycle cut"</span> })}
                {parent_missing}
                {ghost_label}
            </div>
            <div class="time">
                {gaps}
                <i class="bar" style=format!("left:{left:.3}%;width:{width:.3}%")></i>
                {critical}
                {ghost}
                <span
                    class="dur"
                    style=if label_left {
                        format!("left:calc({:.3}% + 4px)", left + width)
                    } else {
                        format!("right:calc({:.3}% + 4px)", 100.0 - left)
                    }
                >
                    {duration}
                </span>
            </div>
        </div>
    }
}

#[component]
fn Summary(trace: Arc<Derived>, selected: RwSignal<Option<u32>>) -> impl IntoView {
    let t = &trace.trace;
    let origin = t
        .spans
        .iter()
        .position(|s| s.error_origin)
        .map(|i| i as u32);
    let sql = format!("SELECT * FROM trace_tree('{}')", t.trace_id);
    view! {
        <div class="trace-head">
            <h1>
                {t.root_service.clone().map(|s| view! { <ServiceTag name=s/> })}
                <span class="root-name">{t.root_name.clone().unwrap_or_else(|| "(root span not received)".into())}</span>
                <span class="total">{format::duration(t.duration_ns)}</span>
            </h1>
            <div class="facts">
                <span><code id="trace-id">{t.trace_id.clone()}</code></span>
                <span>{format::timestamp(t.start_ns)} " UTC"</span>
                <span id="span-count">{format::count(t.spans.len() as i64)} " spans"</span>
                <span>{t.services.len()} " services"</span>
                <span>"depth " {t.max_depth + 1}</span>
                {(t.error_count > 0).then(|| view! { <span class="badge error">{t.error_count} " errors"</span> })}
                {origin.map(|i| view! {
                    <button class="link" id="goto-origin" on:click=move |_| selected.set(Some(i))>"Go to error origin"</button>
                })}
                {(t.duplicates_merged > 0).then(|| view! { <span class="muted">{t.duplicates_merged} " duplicate deliveries merged"</span> })}
                <a href=format!("/compare?a={}", t.trace_id)>"Compare…"</a>
                <a href=format!("/sql?q={}", encode(&sql))>"As SQL"</a>
                <a href=format!("/api/traces/{}", t.trace_id)>"JSON"</a>
            </div>
            <div class="trace-services">
                {t.services.iter().map(|s| view! { <ServiceTag name=s.name.clone() count=s.spans as i64/> }).collect_view()}
            </div>
            {(!t.warnings.is_empty()).then(|| view! {
                <details class="warnings">
                    <summary>{t.warnings.len()} " things assembly corrected or could not explain"</summary>
                    <ul>{t.warnings.iter().take(200).map(|w| view! { <li>{w.clone()}</li> }).collect_view()}</ul>
                </details>
            })}
        </div>
    }
}

/// The whole trace in a strip: click to jump there.
#[component]
fn Minimap(
    trace: Arc<Derived>,
    adjusted: RwSignal<bool>,
    scroll_top: RwSignal<f64>,
    view_height: RwSignal<f64>,
    visible: Memo<Vec<u32>>,
    rows_ref: NodeRef<leptos::html::Div>,
) -> impl IntoView {
    if trace.trace.spans.len() < 30 {
        return ().into_any();
    }
    let lines = {
        let trace = trace.clone();
        move || {
            let lines = minimap(&trace.trace, adjusted.get(), 80);
            let n = lines.len().max(1) as f64;
            lines
                .into_iter()
                .enumerate()
                .map(|(k, l)| {
                    let color =
                        crate::color::service(&trace.trace.services[l.service as usize].name);
                    view! {
                        <i
                            class:error=l.error
                            style=format!(
                                "left:{:.2}%;width:{:.2}%;top:{:.2}%;background:{color}",
                                l.left,
                                l.width,
                                k as f64 / n * 100.0
                            )
                        ></i>
                    }
                })
                .collect_view()
        }
    };
    let jump = move |ev: leptos::ev::MouseEvent| {
        let Some(el) = rows_ref.get_untracked() else {
            return;
        };
        let target = event_target::<web_sys::Element>(&ev);
        let height = f64::from(target.client_height()).max(1.0);
        let fraction = f64::from(ev.offset_y()) / height;
        let total = visible.with_untracked(|v| v.len()) as f64 * ROW_HEIGHT;
        el.set_scroll_top((fraction * total - f64::from(el.client_height()) / 2.0).max(0.0) as i32);
    };
    view! {
        <div class="minimap" on:click=jump title="Overview: click to jump">
            {lines}
            <b
                class="viewport"
                style=move || {
                    let total = (visible.read().len() as f64 * ROW_HEIGHT).max(1.0);
                    format!(
                        "top:{:.2}%;height:{:.2}%",
                        scroll_top.get() / total * 100.0,
                        (view_height.get() / total * 100.0).min(100.0)
                    )
                }
            ></b>
        </div>
    }
    .into_any()
}

#[component]
fn Details(
    trace: Arc<Derived>,
    index: u32,
    on_close: impl Fn() + Send + Sync + 'static,
) -> impl IntoView {
    let row = trace.trace.spans[index as usize].clone();
    let trace_id = trace.trace.trace_id.clone();
    let detail = Resource::new(
        {
            let trace_id = trace_id.clone();
            let span_id = row.span_id.clone();
            move || (trace_id.clone(), span_id.clone())
        },
        |(t, s)| async move { get_span(t, s).await },
    );
    let offset = row.start(true) - trace.trace.start_ns;
    let parent = row
        .parent
        .map(|p| trace.trace.spans[p as usize].name.clone());
    view! {
        <aside class="details" id="details" aria-label="Span details">
            <div class="details-head">
                <button class="close" aria-label="Close details" on:click=move |_| on_close()>"×"</button>
                <ServiceTag name=trace.trace.services[row.service as usize].name.clone()/>
                <h2>{row.name.clone()}</h2>
                <div class="facts">
                    <span>{row.kind.to_lowercase()}</span>
                    <span>{format::duration(row.end(true) - row.start(true))}</span>
                    <span>"at +" {format::duration(offset)}</span>
                    {(row.critical_ns > 0).then(|| view! { <span>{format::duration(row.critical_ns)} " on the critical path"</span> })}
                    {(row.shift_ns != 0).then(|| view! { <span class="muted">"clock adjusted by " {format::duration(row.shift_ns)}</span> })}
                </div>
                {(row.status == Status::Error).then(|| view! {
                    <p class="status-error">
                        {if row.error_origin { "Error origin: " } else { "Error: " }}
                        {if row.status_message.is_empty() { "(no message)".to_string() } else { row.status_message.clone() }}
                    </p>
                })}
                {row.hop.map(|h| view! {
                    <p class="muted">
                        "Network: " {format::duration(h.gap_before_ns)} " before, "
                        {format::duration(h.gap_after_ns)} " after (as seen by the caller)"
                    </p>
                })}
                {parent.map(|p| view! { <p class="muted">"Called by " {p}</p> })}
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading span…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(Some(s)) => view! { <DetailBody span=s/> }.into_any(),
                        Ok(None) => view! { <p>"This span is no longer stored."</p> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </aside>
    }
}

#[component]
fn DetailBody(span: SpanDetail) -> impl IntoView {
    let start = span.start_ns;
    view! {
        <KvTable title="Attributes" rows=span.attributes.clone()/>
        <KvTable title="Resource" rows=span.resource.clone()/>
        {(!span.scope_attributes.is_empty()).then(|| view! {
            <KvTable title="Scope" rows=span.scope_attributes.clone()/>
        })}
        {(!span.events.is_empty()).then(|| view! {
            <h3>"Events"</h3>
            <ul class="events">
                {span.events.iter().map(|e| view! {
                    <li>
                        <b>{e.name.clone()}</b>
                        <span class="muted">" +" {format::duration(e.time_ns - start)}</span>
                        <KvTable title="" rows=e.attributes.clone()/>
                    </li>
                }).collect_view()}
            </ul>
        })}
        {(!span.links.is_empty()).then(|| view! {
            <h3>"Links"</h3>
            <ul class="links">
                {span.links.iter().map(|l| view! {
                    <li>
                        <a href=format!("/trace/{}?span={}", l.trace_id, l.span_id)>
                            <code>{l.trace_id.clone()}</code> " / " <code>{l.span_id.clone()}</code>
                        </a>
                    </li>
                }).collect_view()}
            </ul>
        })}
        <h3>"Identity"</h3>
        <table class="kv">
            <tbody>
            <tr><th>"span id"</th><td><code id="detail-span-id">{span.span_id.clone()}</code></td></tr>
            <tr><th>"parent"</th><td><code>{span.parent_span_id.clone().unwrap_or_else(|| "(root)".into())}</code></td></tr>
            <tr><th>"trace id"</th><td><code>{span.trace_id.clone()}</code></td></tr>
            <tr><th>"start"</th><td>{format::timestamp(span.start_ns)} " UTC (host clock)"</td></tr>
            <tr><th>"status"</th><td>{format!("{:?}", span.status).to_uppercase()}</td></tr>
            <tr><th>"scope"</th><td>{span.scope.clone()}</td></tr>
            {(!span.trace_state.is_empty()).then(|| view! { <tr><th>"tracestate"</th><td>{span.trace_state.clone()}</td></tr> })}
            <tr><th>"flags"</th><td>{format!("{:#04x}", span.flags)}</td></tr>
            </tbody>
        </table>
    }
}

#[component]
fn KvTable(#[prop(into)] title: String, rows: Vec<crate::model::KeyValue>) -> impl IntoView {
    if rows.is_empty() {
        return ().into_any();
    }
    view! {
        {(!title.is_empty()).then(|| view! { <h3>{title.clone()}</h3> })}
        // An explicit <tbody>: the browser's parser adds one, and hydration must find what the
        // server sent.
        <table class="kv">
            <tbody>
                {rows.into_iter().map(|kv| view! {
                    <tr>
                        <th>{kv.key}</th>
                        <td class=format!("v-{}", kv.kind)>{kv.value}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}
