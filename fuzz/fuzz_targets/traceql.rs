//! Any text given to the TraceQL parser: it answers a query or an error, never panics; a query
//! prints in a form that parses back to the same tree; compiling it gives SQL or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spanlake_query::traceql;
use spanlake_query::traces::Window;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = traceql::parse(text) else {
        return;
    };
    let printed = query.to_string();
    let reparsed = traceql::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(query, reparsed, "{text:?} printed as {printed:?}");
    let window = Window {
        start_ns: 0,
        end_ns: 1_000_000_000,
    };
    let _ = traceql::compile(&query, window);
    let _ = traceql::compile_metrics(&query, window, 1000);
});
