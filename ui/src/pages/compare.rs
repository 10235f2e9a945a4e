//! `/compare/{a}/{b}`: two traces of the same operation side by side. Spans are matched by their
//! place in the call chain; what ran in only one of them and what got much slower or faster is
//! highlighted.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::param;
use crate::api::{error_text, get_trace};
use crate::app::{ErrorBox, ServiceTag};
use crate::diff::compare;
use crate::format;
use crate::model::TraceView;

#[component]
pub fn ComparePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let a = Memo::new(move |_| {
        let p = param(&params.read(), "a");
        if p.is_empty() {
            param(&query.read(), "a")
        } else {
            p
        }
    });
    let b = Memo::new(move |_| {
        let p = param(&params.read(), "b");
        if p.is_empty() {
            param(&query.read(), "b")
        } else {
            p
        }
    });
    let in_path = Memo::new(move |_| !param(&params.read(), "a").is_empty());
    let traces = Resource::new(
        move || {
            (
                a.get().trim().to_string(),
                b.get().trim().to_string(),
                in_path.get(),
            )
        },
        |(a, b, in_path)| async move {
            if !in_path || a.is_empty() || b.is_empty() {
                return Ok(None);
            }
            let ta = get_trace(a.clone()).await?;
            let tb = get_trace(b.clone()).await?;
            Ok::<_, ServerFnError>(Some((a, ta, b, tb)))
        },
    );
    view! {
        <Title text="Compare traces · Spanlake"/>
        <section class="compare-page">
            <div class="page-head">
                <h1>"Compare two traces"</h1>
                <form class="filters inline" method="get" action="/go">
                    <label>"Trace A" <input name="a" value=a.get_untracked() placeholder="trace id" size="34"/></label>
                    <label>"Trace B" <input name="b" value=b.get_untracked() placeholder="trace id" size="34"/></label>
                    <button type="submit" class="primary">"Compare"</button>
                </form>
            </div>
            <Suspense fallback=|| view! { <p class="loading">"Loading both traces…"</p> }>
                {move || Suspend::new(async move {
                    match traces.await {
                        Ok(None) => view! {
                            <p class="hint">"Enter two trace ids, e.g. a fast and a slow request to the same endpoint."</p>
                        }.into_any(),
                        Ok(Some((a, None, _, _))) | Ok(Some((_, _, a, None))) => view! {
                            <ErrorBox message=format!("trace {a} not found")/>
                        }.into_any(),
                        Ok(Some((_, Some(ta), _, Some(tb)))) => view! { <Comparison a=ta b=tb/> }.into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e)/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Comparison(a: TraceView, b: TraceView) -> impl IntoView {
    let rows = compare(&a, &b);
    let longest = a.duration_ns.max(b.duration_ns).max(1) as f64;
    let only_a = rows.iter().filter(|r| r.b.is_none()).count();
    let only_b = rows.iter().filter(|r| r.a.is_none()).count();
    let changed = rows.iter().filter(|r| r.changed()).count();
    let head = |t: &TraceView, label: &'static str| {
        view! {
            <div class="cmp-trace">
                <b>{label}</b>
                <a href=format!("/trace/{}", t.trace_id)><code>{t.trace_id.clone()}</code></a>
                {t.root_service.clone().map(|s| view! { <ServiceTag name=s/> })}
                <span>{t.root_name.clone().unwrap_or_default()}</span>
                <span class="hit-duration">{format::duration(t.duration_ns)}</span>
                <span class="muted">{t.spans.len()} " spans, " {t.error_count} " errors"</span>
            </div>
        }
    };
    view! {
        <div class="cmp-head">
            {head(&a, "A")}
            {head(&b, "B")}
            <p id="compare-summary">
                {only_a} " spans only in A, " {only_b} " only in B, "
                {changed} " much slower or faster (≥ 20% and ≥ 1 ms)"
            </p>
        </div>
        <table class="grid compare" id="compare">
            <thead>
                <tr><th>"Span"</th><th>"A"</th><th>"B"</th><th>"B − A"</th></tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|r| {
                    let delta = r.delta_ns();
                    let bar = |d: Option<(u32, i64)>| d.map(|(_, ns)| view! {
                        <span class="cmp-bar" style=format!("width:{:.2}%", ns as f64 / longest * 100.0)></span>
                        <span class="num">{format::duration(ns)}</span>
                    });
                    view! {
                        <tr
                            class:only-a=r.b.is_none()
                            class:only-b=r.a.is_none()
                            class:changed=r.changed()
                        >
                            <td style=format!("padding-left:{}px", 6 + r.depth.min(30) * 14)>
                                <ServiceTag name=r.service.clone()/>
                                " " {r.name.clone()}
                                {r.b.is_none().then(|| view! { <span class="badge">"only in A"</span> })}
                                {r.a.is_none().then(|| view! { <span class="badge">"only in B"</span> })}
                            </td>
                            <td class="cmp-cell">{bar(r.a)}</td>
                            <td class="cmp-cell">{bar(r.b)}</td>
                            <td class="num" class:slower={delta.is_some_and(|d| d > 0)} class:faster={delta.is_some_and(|d| d < 0)}>
                                {delta.map(|d| format!("{}{}", if d > 0 { "+" } else { "" }, format::duration(d)))}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
