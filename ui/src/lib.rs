#![recursion_limit = "512"]
//! Spanlake's web trace explorer, in Leptos: pages rendered on the server (every page has a
//! deep link that shows its content before any script runs) and hydrated in the browser from a
//! wasm bundle.
//!
//! The `ssr` feature (default) is the server half ([`server::router`]); the `hydrate` feature
//! builds the browser half for `wasm32-unknown-unknown` (see `scripts/build-ui`). Pure logic —
//! waterfall geometry, graph layout, trace comparison, formatting — lives in modules of its own
//! and is tested without a browser.

pub mod api;
pub mod app;
pub mod color;
pub mod diff;
pub mod format;
pub mod graph;
pub mod model;
pub mod pages;
pub mod waterfall;

#[cfg(feature = "ssr")]
pub mod server;

/// The browser entry point: attaches the application to the server-rendered page.
#[cfg(feature = "hydrate")]
#[allow(unsafe_code)] // `#[wasm_bindgen]` expands to the unsafe glue of the export.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
