//! One module per page.

pub mod compare;
pub mod search;
pub mod services;
pub mod sql;
pub mod trace;

use leptos_router::params::ParamsMap;

/// A query parameter, empty when absent.
pub fn param(map: &ParamsMap, name: &str) -> String {
    map.get(name).unwrap_or_default()
}

/// Percent-encodes a value for a URL query.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
