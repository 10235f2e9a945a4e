//! Numbers and times as people read them. Pure functions, so the server and the browser print
//! exactly the same text (hydration depends on it).

/// A duration in nanoseconds with a unit that keeps three significant digits: `842µs`,
/// `12.4ms`, `3.02s`, `2m 5s`.
pub fn duration(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs() as f64;
    let text = if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        three_digits(ns / 1e3, "µs")
    } else if ns < 1e9 {
        three_digits(ns / 1e6, "ms")
    } else if ns < 60e9 {
        three_digits(ns / 1e9, "s")
    } else {
        let secs = (ns / 1e9).round() as u64;
        if secs < 3600 {
            format!("{}m {}s", secs / 60, secs % 60)
        } else {
            format!("{}h {}m", secs / 3600, secs % 3600 / 60)
        }
    };
    format!("{sign}{text}")
}

fn three_digits(value: f64, unit: &str) -> String {
    if value >= 100.0 {
        format!("{value:.0}{unit}")
    } else if value >= 10.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.2}{unit}")
    }
}

/// UNIX nanoseconds as a UTC date and time to the millisecond: `2026-11-26 14:03:07.123`.
pub fn timestamp(ns: i64) -> String {
    let (date, secs_of_day, millis) = split_time(ns);
    format!(
        "{date} {:02}:{:02}:{:02}.{millis:03}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// UNIX nanoseconds as a UTC time of day: `14:03:07`.
pub fn time_of_day(ns: i64) -> String {
    let (_, secs_of_day, _) = split_time(ns);
    format!(
        "{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

fn split_time(ns: i64) -> (String, i64, i64) {
    let millis_total = ns.div_euclid(1_000_000);
    let secs = millis_total.div_euclid(1000);
    let millis = millis_total.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (format!("{y:04}-{m:02}-{d:02}"), secs_of_day, millis)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A count with thousands separators: `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A ratio as a percentage with one decimal: `2.5%`.
pub fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A rate: `1200/s`, `12.5/s`, `1.5/s`, and per minute when slower: `6.0/min`, `0.10/min`.
pub fn rate(per_second: f64) -> String {
    if per_second < 0.1 {
        let per_minute = per_second * 60.0;
        if per_minute >= 1.0 {
            format!("{per_minute:.1}/min")
        } else {
            format!("{per_minute:.2}/min")
        }
    } else if per_second >= 100.0 {
        format!("{per_second:.0}/s")
    } else if per_second >= 1.0 {
        format!("{per_second:.1}/s")
    } else {
        format!("{per_second:.2}/s")
    }
}

/// Parses a duration typed by a user (`150ms`, `2s`, `1.5s`, `300us`, `1m`); a bare number is
/// milliseconds. `None` when it is not a duration.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" => 1e6,
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    Some((value * scale).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_three_digits() {
        assert_eq!(duration(512), "512ns");
        assert_eq!(duration(842_000), "842µs");
        assert_eq!(duration(12_430_000), "12.4ms");
        assert_eq!(duration(3_020_000_000), "3.02s");
        assert_eq!(duration(125_000_000_000), "2m 5s");
        assert_eq!(duration(-1_500_000), "-1.50ms");
    }

    #[test]
    fn timestamps_are_utc() {
        // 2026-11-26T14:03:07.123Z
        let ns = 1_795_701_787_123_000_000;
        assert_eq!(timestamp(ns), "2026-11-26 14:03:07.123");
        assert_eq!(time_of_day(ns), "14:03:07");
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            timestamp(951_782_400_000_000_000),
            "2000-02-29 00:00:00.000"
        );
    }

    #[test]
    fn counts_bytes_rates() {
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-999), "-999");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(percent(0.025), "2.5%");
        assert_eq!(rate(0.25), "0.25/s");
        assert_eq!(rate(6.0 / 3600.0), "0.10/min");
        assert_eq!(rate(0.05), "3.0/min");
        assert_eq!(rate(1200.0), "1200/s");
    }

    #[test]
    fn typed_durations() {
        assert_eq!(parse_duration("150ms"), Some(150_000_000));
        assert_eq!(parse_duration("2s"), Some(2_000_000_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("40"), Some(40_000_000));
        assert_eq!(parse_duration("300us"), Some(300_000));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
