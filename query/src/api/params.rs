//! Query-string values shared by the APIs: times, durations and windows, with errors that name
//! the parameter and what was expected.

use std::time::Duration;

use crate::traces::{Window, now_ns};
use crate::{Error, Result};

/// The first value of query parameter `name`, trimmed, unless it is empty.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A point in time: RFC 3339 (`2026-11-26T10:00:00Z`), or a UNIX time whose unit is read from
/// its size (seconds, milliseconds, microseconds or nanoseconds), as Grafana, Jaeger and Tempo
/// each send a different one.
pub fn parse_time(name: &str, value: &str) -> Result<i64> {
    let value = value.trim();
    if let Ok(n) = value.parse::<i64>() {
        let abs = n.unsigned_abs();
        return Ok(if abs < 100_000_000_000 {
            n.saturating_mul(1_000_000_000)
        } else if abs < 100_000_000_000_000 {
            n.saturating_mul(1_000_000)
        } else if abs < 100_000_000_000_000_000 {
            n.saturating_mul(1_000)
        } else {
            n
        });
    }
    humantime::parse_rfc3339_weak(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .ok_or_else(|| {
            Error::BadRequest(format!(
                "{name}={value:?} is not a time: use RFC 3339 or a UNIX timestamp"
            ))
        })
}

/// A duration such as `150ms`, `2s`, `1h30m`; a bare number is read in `bare_unit`.
pub fn parse_duration(name: &str, value: &str, bare_unit: Duration) -> Result<Duration> {
    let value = value.trim();
    if let Ok(n) = value.parse::<f64>()
        && n >= 0.0
    {
        return Ok(bare_unit.mul_f64(n));
    }
    humantime::parse_duration(value).map_err(|e| {
        Error::BadRequest(format!(
            "{name}={value:?} is not a duration ({e}); examples: 150ms, 2s, 1h"
        ))
    })
}

/// The window given by `start`/`end` and/or `lookback` (default `default_lookback` before
/// `end`, which defaults to now).
pub fn window(
    start: Option<&str>,
    end: Option<&str>,
    lookback: Option<&str>,
    default_lookback: Duration,
) -> Result<Window> {
    let end_ns = match end {
        Some(e) if !e.is_empty() => parse_time("end", e)?,
        _ => now_ns().saturating_add(60_000_000_000),
    };
    let start_ns = match (start, lookback) {
        (Some(s), _) if !s.is_empty() => parse_time("start", s)?,
        (_, Some(l)) if !l.is_empty() => {
            let back = parse_duration("lookback", l, Duration::from_secs(1))?;
            end_ns.saturating_sub(back.as_nanos() as i64)
        }
        _ => end_ns.saturating_sub(default_lookback.as_nanos() as i64),
    };
    if start_ns >= end_ns {
        return Err(Error::BadRequest(format!(
            "the time range is empty: start {start_ns} ns is not before end {end_ns} ns"
        )));
    }
    Ok(Window { start_ns, end_ns })
}

/// A positive count, at most `max`.
pub fn parse_limit(name: &str, value: Option<&str>, default: usize, max: usize) -> Result<usize> {
    match value {
        None | Some("") => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n.min(max)),
            _ => Err(Error::BadRequest(format!(
                "{name}={v:?} is not a positive whole number"
            ))),
        },
    }
}

/// `key=value` pairs written as `k1=v1 k2="v 2"` (logfmt, as Tempo and Grafana send) or as a
/// JSON object `{"k1":"v1"}` (as Jaeger's UI sends).
pub fn parse_tags(name: &str, value: &str) -> Result<Vec<(String, String)>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if value.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(value)
            .map_err(|e| Error::BadRequest(format!("{name} is not a JSON object: {e}")))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect());
    }
    let mut out = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if chars.next() != Some('=') || key.is_empty() {
            return Err(Error::BadRequest(format!(
                "{name}: expected key=value pairs separated by spaces, near {key:?}"
            )));
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => v.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => {
                        return Err(Error::BadRequest(format!(
                            "{name}: unterminated quote in the value of {key}"
                        )));
                    }
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect()
        };
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_any_unit() {
        let ns = 1_700_000_000_000_000_000;
        for v in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
        ] {
            assert_eq!(parse_time("t", v).unwrap(), ns, "{v}");
        }
        assert_eq!(parse_time("t", "2023-11-14T22:13:20Z").unwrap(), ns);
        assert!(
            parse_time("start", "yesterday")
                .unwrap_err()
                .to_string()
                .contains("start=")
        );
    }

    #[test]
    fn durations_and_tags() {
        let ms = Duration::from_millis(1);
        assert_eq!(
            parse_duration("d", "150ms", ms).unwrap(),
            Duration::from_millis(150)
        );
        assert_eq!(
            parse_duration("d", "2", ms).unwrap(),
            Duration::from_millis(2)
        );
        assert_eq!(
            parse_tags("tags", r#"http.route=/a error=true msg="a b\"c""#).unwrap(),
            vec![
                ("http.route".into(), "/a".into()),
                ("error".into(), "true".into()),
                ("msg".into(), "a b\"c".into())
            ]
        );
        assert_eq!(
            parse_tags("tags", r#"{"http.status_code":"500","retry":true}"#).unwrap(),
            vec![
                ("http.status_code".into(), "500".into()),
                ("retry".into(), "true".into())
            ]
        );
        assert!(parse_tags("tags", "novalue").is_err());
        assert!(window(Some("10"), Some("5"), None, Duration::from_secs(1)).is_err());
    }
}
