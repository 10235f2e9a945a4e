//! Jaeger's query strings: v1 search (`start`/`end` in microseconds, Go durations, `tags` as
//! JSON and `tag=key:value`), api_v3 search (`query.*`, RFC 3339 times) and the dependency
//! window (`endTs`/`lookback` in milliseconds). Each bad value is an error naming the parameter.

use std::time::Duration;

use crate::api::params::{parse_duration, parse_limit, parse_tags, parse_time, window};
use crate::api::traces::MAX_SEARCH_LIMIT;
use crate::traces::{SearchQuery, Window, now_ns};
use crate::{Error, Result};

/// How far back a search looks without a time range: Jaeger's default.
pub(super) const DEFAULT_SEARCH_LOOKBACK: Duration = Duration::from_secs(2 * 24 * 3600);
/// How far back the dependency graph looks without `lookback`: Jaeger's default.
pub(super) const DEFAULT_DEPENDENCY_LOOKBACK: Duration = Duration::from_secs(24 * 3600);
/// Traces per search when the client does not say.
const DEFAULT_LIMIT: usize = 20;

pub(super) use crate::api::params::param;

/// A boolean parameter as Go's `strconv.ParseBool` reads it; absent is false.
pub(super) fn flag(params: &[(String, String)], name: &str) -> Result<bool> {
    match param(params, name) {
        None => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(Error::BadRequest(format!(
            "{name}={v:?} is not a boolean: use true or false"
        ))),
    }
}

/// The search of `GET /api/traces` (v1).
pub(super) fn v1_search(params: &[(String, String)]) -> Result<SearchQuery> {
    // The UI sends its lookback choice along with start and end; "custom" means start/end only.
    let lookback = param(params, "lookback").filter(|l| *l != "custom");
    let window = window(
        param(params, "start"),
        param(params, "end"),
        lookback,
        DEFAULT_SEARCH_LOOKBACK,
    )?;
    let mut query = SearchQuery::new(window);
    query.service = param(params, "service").map(str::to_owned);
    query.operation = param(params, "operation").map(str::to_owned);
    for (key, value) in params {
        match key.as_str() {
            "tags" => add_tags(&mut query, parse_tags("tags", value)?),
            "tag" => {
                let (k, v) = value.split_once(':').ok_or_else(|| {
                    Error::BadRequest(format!("tag={value:?} is not of the form key:value"))
                })?;
                add_tags(&mut query, vec![(k.to_owned(), v.to_owned())]);
            }
            _ => {}
        }
    }
    durations(&mut query, params, "minDuration", "maxDuration")?;
    query.limit = limit(params, "limit")?;
    Ok(query)
}

/// The search of `GET /api/v3/traces`.
pub(super) fn v3_search(params: &[(String, String)]) -> Result<SearchQuery> {
    let time = |name| param(params, name).map(|v| rfc3339(name, v)).transpose();
    let (min, max) = (time("query.start_time_min")?, time("query.start_time_max")?);
    let end_ns = max.unwrap_or_else(|| now_ns().saturating_add(60_000_000_000));
    let start_ns =
        min.unwrap_or_else(|| end_ns.saturating_sub(DEFAULT_SEARCH_LOOKBACK.as_nanos() as i64));
    if start_ns >= end_ns {
        return Err(Error::BadRequest(
            "query.start_time_min must be before query.start_time_max".into(),
        ));
    }
    let mut query = SearchQuery::new(Window { start_ns, end_ns });
    query.service = param(params, "query.service_name").map(str::to_owned);
    query.operation = param(params, "query.operation_name").map(str::to_owned);
    for (key, value) in params {
        if key == "query.attributes" {
            add_tags(&mut query, parse_tags(key, value)?);
        }
    }
    durations(
        &mut query,
        params,
        "query.duration_min",
        "query.duration_max",
    )?;
    query.limit = if param(params, "query.search_depth").is_some() {
        limit(params, "query.search_depth")?
    } else {
        limit(params, "query.num_traces")?
    };
    Ok(query)
}

/// The window of `GET /api/dependencies`: `lookback` milliseconds (or a duration such as `1h`)
/// before `endTs` (UNIX milliseconds, default now).
pub(super) fn dependency_window(params: &[(String, String)]) -> Result<Window> {
    let end_ns = match param(params, "endTs") {
        Some(v) => parse_time("endTs", v)?,
        None => now_ns(),
    };
    let lookback = match param(params, "lookback") {
        Some(v) => parse_duration("lookback", v, Duration::from_millis(1))?,
        None => DEFAULT_DEPENDENCY_LOOKBACK,
    };
    Ok(Window {
        start_ns: end_ns.saturating_sub(lookback.as_nanos().min(i64::MAX as u128) as i64),
        end_ns,
    })
}

/// Search tags in Jaeger's vocabulary: the tags our Jaeger view derives from span fields
/// (`span.kind`, `otel.status_code`) filter on those fields; `error=true` means status ERROR
/// (see [`SearchQuery::attributes`]); anything else is an attribute.
fn add_tags(query: &mut SearchQuery, tags: Vec<(String, String)>) {
    for (key, value) in tags {
        match key.as_str() {
            "span.kind" => query.span_kind = Some(value.to_ascii_uppercase()),
            "otel.status_code" if value.eq_ignore_ascii_case("error") => query.errors_only = true,
            _ => query.attributes.push((key, value)),
        }
    }
}

fn durations(
    query: &mut SearchQuery,
    params: &[(String, String)],
    min_name: &str,
    max_name: &str,
) -> Result<()> {
    let ns = |name| -> Result<Option<i64>> {
        param(params, name)
            .map(|v| go_duration(name, v).map(|d| d.as_nanos().min(i64::MAX as u128) as i64))
            .transpose()
    };
    query.min_duration_ns = ns(min_name)?;
    query.max_duration_ns = ns(max_name)?;
    if let (Some(min), Some(max)) = (query.min_duration_ns, query.max_duration_ns)
        && max < min
    {
        return Err(Error::BadRequest(format!(
            "{max_name} must not be less than {min_name}"
        )));
    }
    Ok(())
}

/// A positive trace count; `0`, like absence, means the default.
fn limit(params: &[(String, String)], name: &str) -> Result<usize> {
    let value = param(params, name).filter(|v| *v != "0");
    parse_limit(name, value, DEFAULT_LIMIT, MAX_SEARCH_LIMIT)
}

/// A duration as Go's `time.ParseDuration` reads it (`250ms`, `1.5s`, `1h30m`, `100us`), which
/// is what Jaeger's clients send; other forms [`parse_duration`] knows (`2d`, a bare number of
/// milliseconds) are accepted too.
pub(super) fn go_duration(name: &str, value: &str) -> Result<Duration> {
    parse_go_duration(value.trim())
        .map_or_else(|| parse_duration(name, value, Duration::from_millis(1)), Ok)
}

fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = s;
    let mut total_ns = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c| !is_number(c)).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(is_number).unwrap_or(rest.len());
        let unit_ns = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_ns += number * unit_ns;
        rest = &rest[unit_len..];
    }
    (total_ns < u64::MAX as f64).then(|| Duration::from_nanos(total_ns.round() as u64))
}

/// A time as Go's `time.RFC3339Nano` writes it: `Z` or a numeric offset, whose `+` arrives as
/// a space when the client did not escape it (Grafana does not); or anything [`parse_time`]
/// reads.
pub(super) fn rfc3339(name: &str, value: &str) -> Result<i64> {
    let bytes = value.as_bytes();
    if let [.., sign @ (b'+' | b'-' | b' '), h1, h2, b':', m1, m2] = bytes
        && [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
        && value.contains('T')
    {
        let digit = |b: &u8| i64::from(b - b'0');
        let minutes = (digit(h1) * 10 + digit(h2)) * 60 + digit(m1) * 10 + digit(m2);
        let offset_ns = minutes * 60_000_000_000 * if *sign == b'-' { -1 } else { 1 };
        let local = parse_time(name, &value[..value.len() - 6])?;
        return Ok(local.saturating_sub(offset_ns));
    }
    parse_time(name, value)
}
