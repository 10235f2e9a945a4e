//! The application shell: the HTML document, the header with navigation and the theme switch,
//! and the routes of every page.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::{SsrMode, path};

use crate::pages::{
    compare::ComparePage, search::SearchPage, services::ServicePage, services::ServicesPage,
    sql::SqlPage, trace::TracePage,
};

const STYLE: &str = include_str!("style.css");

/// Applies the saved theme before the first paint, so a dark-theme user never sees a flash.
const THEME_SCRIPT: &str = "try{var t=localStorage.getItem('spanlake-theme');\
if(t)document.documentElement.dataset.theme=t}catch(e){}";

/// The whole HTML document around the application, rendered on the server only.
pub fn shell(options: leptos::config::LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <script inner_html=THEME_SCRIPT></script>
                <style inner_html=STYLE></style>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The explorer: header and routed pages.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser, once the page is live: mark it for tests and tools.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "");
        }
    });
    view! {
        <Title text="Spanlake"/>
        <Router>
            <Header/>
            <main>
                <Routes fallback=|| view! { <NotFound/> }>
                    <Route path=path!("/") view=SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/search") view=SearchPage ssr=SsrMode::Async/>
                    <Route path=path!("/trace/:id") view=TracePage ssr=SsrMode::Async/>
                    <Route path=path!("/services") view=ServicesPage ssr=SsrMode::Async/>
                    <Route path=path!("/services/:name") view=ServicePage ssr=SsrMode::Async/>
                    <Route path=path!("/compare") view=ComparePage ssr=SsrMode::Async/>
                    <Route path=path!("/compare/:a/:b") view=ComparePage ssr=SsrMode::Async/>
                    <Route path=path!("/sql") view=SqlPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn Header() -> impl IntoView {
    view! {
        <header class="top">
            <A href="/search" attr:class="brand">
                <span class="logo">"◆"</span>
                " Spanlake"
            </A>
            <nav>
                <A href="/search">"Search"</A>
                <A href="/services">"Service map"</A>
                <A href="/compare">"Compare"</A>
                <A href="/sql">"SQL"</A>
            </nav>
            <form class="jump" method="get" action="/go">
                <input
                    name="trace"
                    placeholder="Go to trace id…"
                    aria-label="Trace id"
                    autocomplete="off"
                    spellcheck="false"
                />
            </form>
            <ThemeToggle/>
        </header>
    }
}

/// Switches between the light and dark themes and remembers the choice.
#[component]
fn ThemeToggle() -> impl IntoView {
    let toggle = move |_| {
        let Some(root) = document().document_element() else {
            return;
        };
        let dark_now = match root.get_attribute("data-theme").as_deref() {
            Some("dark") => true,
            Some(_) => false,
            None => window()
                .match_media("(prefers-color-scheme: dark)")
                .ok()
                .flatten()
                .is_some_and(|m| m.matches()),
        };
        let next = if dark_now { "light" } else { "dark" };
        let _ = root.set_attribute("data-theme", next);
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item("spanlake-theme", next);
        }
    };
    view! {
        <button class="theme" title="Switch light/dark theme" aria-label="Switch theme" on:click=toggle>
            "◐"
        </button>
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found · Spanlake"/>
        <section class="empty">
            <h1>"Nothing here"</h1>
            <p>"This page does not exist. " <A href="/search">"Search traces"</A> " instead."</p>
        </section>
    }
}

/// A failure, in words.
#[component]
pub fn ErrorBox(#[prop(into)] message: String) -> impl IntoView {
    view! {
        <div class="error-box" role="alert">
            <strong>"Something went wrong: "</strong>
            {message}
        </div>
    }
}

/// A service name with its colour.
#[component]
pub fn ServiceTag(
    #[prop(into)] name: String,
    #[prop(optional)] count: Option<i64>,
) -> impl IntoView {
    let color = crate::color::service(&name);
    view! {
        <span class="svc" style=format!("--svc:{color}")>
            <i class="dot"></i>
            {name}
            {count.map(|c| view! { <small>" " {c}</small> })}
        </span>
    }
}
