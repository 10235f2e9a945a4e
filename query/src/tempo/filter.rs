//! The span conditions of Tempo's original `tags=` search, and the small part of TraceQL that
//! Grafana sends with tag-name and tag-value lookups to narrow them (one spanset `{...}` of
//! comparisons joined by `&&`).
//!
//! Searches with a TraceQL `q=` do not come here: [`crate::traceql`] parses and compiles the
//! whole language. What this parser does not know, the lookups ignore (see `lenient_filter`).

use std::collections::HashSet;

use spanlake_storage::batch::{SpanKind, StatusCode};

use crate::{Error, Result};

/// Conditions that one span must all meet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFilter {
    pub conditions: Vec<Condition>,
}

/// One condition on a span.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The resource's `service.name` (the `service_name` column).
    Service(String),
    /// The span name.
    Name(String),
    Kind(SpanKind),
    Status(StatusCode),
    /// Span duration compared with nanoseconds.
    Duration(Comparison, i64),
    /// An attribute equal to a value, compared as stored text (`500`, `true`, `1.5`).
    Attribute {
        scope: Scope,
        key: String,
        value: String,
    },
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Span,
    Resource,
    /// Either (`.key` in TraceQL, any key in `tags=`).
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Comparison {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
        }
    }
}

/// What the error of an unsupported query says besides where it stopped.
const SUPPORTED: &str = "TraceQL is not supported yet: q accepts {} or one {...} of conditions \
     joined by && (resource.<attr>, span.<attr>, .<attr>, name, status, kind with =, and \
     duration with =, >, >=, <, <=); tags= (logfmt) works for other searches";

impl SpanFilter {
    /// The `tags=` pairs of Tempo's original search: `service.name` is the resource's service,
    /// `name` the span name, `status.code` the status (`error`, `ok`, `unset`), `error=true`
    /// means status error; any other key is a span or resource attribute.
    pub fn from_tags(tags: &[(String, String)]) -> Result<Self> {
        let mut seen = HashSet::new();
        let mut conditions = Vec::with_capacity(tags.len());
        for (key, value) in tags {
            if !seen.insert(key.as_str()) {
                return Err(Error::BadRequest(format!(
                    "tags: tag {key} has been set twice"
                )));
            }
            conditions.push(match key.as_str() {
                "service.name" => Condition::Service(value.clone()),
                "name" => Condition::Name(value.clone()),
                "status.code" => Condition::Status(status_from_tag(value).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "tags: status.code={value:?} is not a status: use error, ok or unset"
                    ))
                })?),
                "error" if value == "true" => Condition::Status(StatusCode::Error),
                _ => Condition::Attribute {
                    scope: Scope::Any,
                    key: key.clone(),
                    value: value.clone(),
                },
            });
        }
        Ok(Self { conditions })
    }

    /// Parses the `q=` of a search: `{}`, empty, or one spanset of `&&`-joined conditions.
    pub fn from_traceql(q: &str) -> Result<Self> {
        Parser::new(q).query().map_err(|e| {
            Error::BadRequest(format!(
                "q: {} at column {}; {SUPPORTED}",
                e.message, e.column
            ))
        })
    }

    /// Adds span-duration bounds, both inclusive.
    pub fn with_durations(mut self, min_ns: Option<i64>, max_ns: Option<i64>) -> Self {
        if let Some(min) = min_ns {
            self.conditions
                .push(Condition::Duration(Comparison::Ge, min));
        }
        if let Some(max) = max_ns {
            self.conditions
                .push(Condition::Duration(Comparison::Le, max));
        }
        self
    }
}

fn status_from_tag(value: &str) -> Option<StatusCode> {
    match value.to_ascii_lowercase().as_str() {
        "error" | "2" | "status_code_error" => Some(StatusCode::Error),
        "ok" | "1" | "status_code_ok" => Some(StatusCode::Ok),
        "unset" | "0" | "status_code_unset" => Some(StatusCode::Unset),
        _ => None,
    }
}

/// A Go or Prometheus duration: `150ms`, `1.5s`, `1h30m`, `250us`, `2µs`, `1d`; nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<i64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            "y" => 31_536_000e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total <= i64::MAX as f64).then_some(total.round() as i64)
}

/// Why a query was refused and where.
#[derive(Debug)]
struct ParseError {
    /// 1-based, in characters.
    column: usize,
    message: String,
}

/// A literal on the right of a comparison.
#[derive(Debug, PartialEq)]
enum Value {
    Text(String),
    /// An integer or a float, normalized to the text form stored for attributes.
    Number(String),
    Duration(i64),
    /// A bare word: `true`, `error`, `server`, ...
    Word(String),
}

/// A left-hand side that this parser knows.
enum Field {
    Service,
    Name,
    Status,
    Kind,
    Duration,
    Attribute(Scope, String),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

/// Characters that end a field name, as in TraceQL.
fn ends_name(c: char) -> bool {
    c.is_whitespace() || "{}()=~!<>&|^,".contains(c)
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error_at<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.src[..pos].chars().count() + 1,
            message: message.into(),
        })
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        self.error_at(self.pos, message)
    }

    /// What comes next, for error messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end".into(),
            Some(_) => {
                let near: String = self.rest().chars().take(12).collect();
                format!("{near:?}")
            }
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn query(&mut self) -> Result<SpanFilter, ParseError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Ok(SpanFilter::default());
        }
        if !self.eat("{") {
            return self.error(format!("expected {{ but found {}", self.found()));
        }
        let mut conditions = Vec::new();
        self.skip_ws();
        if !self.eat("}") {
            loop {
                conditions.push(self.condition()?);
                self.skip_ws();
                if self.eat("&&") {
                    continue;
                }
                if self.eat("}") {
                    break;
                }
                return self.error(format!("expected && or }} but found {}", self.found()));
            }
        }
        self.skip_ws();
        if self.peek().is_some() {
            return self.error(format!(
                "expected the end of the query after the spanset but found {}",
                self.found()
            ));
        }
        Ok(SpanFilter { conditions })
    }

    fn condition(&mut self) -> Result<Condition, ParseError> {
        self.skip_ws();
        let field = self.field()?;
        self.skip_ws();
        let op_at = self.pos;
        let op = self.comparison()?;
        self.skip_ws();
        let value_at = self.pos;
        let value = self.value()?;
        let equality = |what: &str| -> Result<(), ParseError> {
            if op == Comparison::Eq {
                Ok(())
            } else {
                self.error_at(op_at, format!("{what} can only be compared with ="))
            }
        };
        Ok(match field {
            Field::Service | Field::Name => {
                let what = if matches!(field, Field::Service) {
                    "resource.service.name"
                } else {
                    "name"
                };
                equality(what)?;
                let Value::Text(text) = value else {
                    return self.error_at(value_at, format!("{what} needs a quoted string"));
                };
                if matches!(field, Field::Service) {
                    Condition::Service(text)
                } else {
                    Condition::Name(text)
                }
            }
            Field::Status => {
                equality("status")?;
                let status = match &value {
                    Value::Word(w) if w == "error" => StatusCode::Error,
                    Value::Word(w) if w == "ok" => StatusCode::Ok,
                    Value::Word(w) if w == "unset" => StatusCode::Unset,
                    _ => return self.error_at(value_at, "status needs error, ok or unset"),
                };
                Condition::Status(status)
            }
            Field::Kind => {
                equality("kind")?;
                let kind = match &value {
                    Value::Word(w) => match w.as_str() {
                        "unspecified" => SpanKind::Unspecified,
                        "internal" => SpanKind::Internal,
                        "server" => SpanKind::Server,
                        "client" => SpanKind::Client,
                        "producer" => SpanKind::Producer,
                        "consumer" => SpanKind::Consumer,
                        _ => return self.error_at(value_at, format!("unknown kind {w}")),
                    },
                    _ => {
                        return self.error_at(
                            value_at,
                            "kind needs unspecified, internal, server, client, producer or consumer",
                        );
                    }
                };
                Condition::Kind(kind)
            }
            Field::Duration => {
                let Value::Duration(ns) = value else {
                    return self.error_at(value_at, "duration needs a duration such as 100ms");
                };
                Condition::Duration(op, ns)
            }
            Field::Attribute(scope, key) => {
                if op != Comparison::Eq {
                    return self.error_at(op_at, "attributes can only be compared with =");
                }
                let value = match value {
                    Value::Text(t) | Value::Number(t) => t,
                    Value::Word(w) if w == "true" || w == "false" => w,
                    Value::Word(w) => {
                        return self.error_at(
                            value_at,
                            format!("{w} is not a value: quote strings, as in \"{w}\""),
                        );
                    }
                    Value::Duration(_) => {
                        return self.error_at(value_at, "attributes cannot be durations");
                    }
                };
                Condition::Attribute { scope, key, value }
            }
        })
    }

    fn field(&mut self) -> Result<Field, ParseError> {
        let start = self.pos;
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if ends_name(c) {
                break;
            }
            if c == '"' {
                // TraceQL allows quoted parts in attribute names: span."a b".
                name.push_str(&self.string()?);
                continue;
            }
            name.push(c);
            self.pos += c.len_utf8();
        }
        if name.is_empty() {
            return self.error(format!("expected a field but found {}", self.found()));
        }
        let attribute = |scope, key: &str| -> Result<Field, ParseError> {
            if key.is_empty() {
                self.error_at(start, format!("{name} names no attribute"))
            } else {
                Ok(Field::Attribute(scope, key.to_string()))
            }
        };
        match name.as_str() {
            "resource.service.name" => Ok(Field::Service),
            "name" | "span:name" => Ok(Field::Name),
            "status" | "span:status" => Ok(Field::Status),
            "kind" | "span:kind" => Ok(Field::Kind),
            "duration" | "span:duration" => Ok(Field::Duration),
            n if n.starts_with("resource.") => attribute(Scope::Resource, &n["resource.".len()..]),
            n if n.starts_with("span.") => attribute(Scope::Span, &n["span.".len()..]),
            n if n.starts_with('.') => attribute(Scope::Any, &n[1..]),
            n => self.error_at(start, format!("unsupported field {n}")),
        }
    }

    fn comparison(&mut self) -> Result<Comparison, ParseError> {
        for unsupported in ["!=", "=~", "!~", "&&", "||"] {
            if self.rest().starts_with(unsupported) {
                return self.error(format!("operator {unsupported} is not supported here"));
            }
        }
        for (token, op) in [
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("=", Comparison::Eq),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
        ] {
            if self.eat(token) {
                return Ok(op);
            }
        }
        self.error(format!(
            "expected =, >, >=, < or <= but found {}",
            self.found()
        ))
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some('"' | '`') => Ok(Value::Text(self.string()?)),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '.' => {
                let token: String = self
                    .rest()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | 'µ' | 'μ'))
                    .collect();
                self.pos += token.len();
                if let Ok(i) = token.parse::<i64>() {
                    return Ok(Value::Number(i.to_string()));
                }
                if let Ok(f) = token.parse::<f64>()
                    && f.is_finite()
                {
                    return Ok(Value::Number(f.to_string()));
                }
                match parse_duration_ns(&token) {
                    Some(ns) => Ok(Value::Duration(ns)),
                    None => self.error_at(start, format!("{token:?} is not a number or duration")),
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let word: String = self
                    .rest()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                self.pos += word.len();
                if word == "nil" {
                    return self.error_at(start, "nil is not supported here");
                }
                Ok(Value::Word(word))
            }
            _ => self.error(format!("expected a value but found {}", self.found())),
        }
    }

    /// A double-quoted string with Go escapes, or a backquoted raw string.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = self.peek().expect("called on a quote");
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' if quote == '"' => {
                    let escaped = match chars.next() {
                        Some((_, 'n')) => '\n',
                        Some((_, 't')) => '\t',
                        Some((_, 'r')) => '\r',
                        Some((_, c @ ('"' | '\\'))) => c,
                        Some((j, c)) => {
                            return self.error_at(
                                self.pos + j,
                                format!("unknown escape \\{c} in a string"),
                            );
                        }
                        None => break,
                    };
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
        self.error_at(start, "unterminated string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn q(text: &str) -> Vec<Condition> {
        SpanFilter::from_traceql(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .conditions
    }

    fn q_err(text: &str) -> String {
        SpanFilter::from_traceql(text).unwrap_err().to_string()
    }

    fn attr(scope: Scope, key: &str, value: &str) -> Condition {
        Condition::Attribute {
            scope,
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn tags_map_to_columns_and_attributes() {
        let filter = SpanFilter::from_tags(&tags(&[
            ("service.name", "frontend"),
            ("name", "GET /cart"),
            ("http.status_code", "500"),
            ("error", "true"),
            ("status.code", "ok"),
        ]))
        .unwrap();
        assert_eq!(
            filter.conditions,
            vec![
                Condition::Service("frontend".into()),
                Condition::Name("GET /cart".into()),
                attr(Scope::Any, "http.status_code", "500"),
                Condition::Status(StatusCode::Error),
                Condition::Status(StatusCode::Ok),
            ]
        );
        let twice = SpanFilter::from_tags(&tags(&[("a", "1"), ("a", "2")])).unwrap_err();
        assert!(
            twice.to_string().contains("tag a has been set twice"),
            "{twice}"
        );
        let status = SpanFilter::from_tags(&tags(&[("status.code", "bad")])).unwrap_err();
        assert!(status.to_string().contains("status.code"), "{status}");
    }

    #[test]
    fn durations_bound_the_filter() {
        let filter = SpanFilter::default().with_durations(Some(5), Some(9));
        assert_eq!(
            filter.conditions,
            vec![
                Condition::Duration(Comparison::Ge, 5),
                Condition::Duration(Comparison::Le, 9)
            ]
        );
    }

    #[test]
    fn go_and_prometheus_durations() {
        assert_eq!(parse_duration_ns("100ms"), Some(100_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration_ns("250us"), Some(250_000));
        assert_eq!(parse_duration_ns("2µs"), Some(2_000));
        assert_eq!(parse_duration_ns("7ns"), Some(7));
        assert_eq!(parse_duration_ns("1d"), Some(86_400_000_000_000));
        for bad in ["", "100", "ms", "1x", "1.2.3s"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_queries_match_everything() {
        assert!(q("{}").is_empty());
        assert!(q(" { } ").is_empty());
        assert!(q("").is_empty());
    }

    #[test]
    fn grafana_search_builder_queries() {
        assert_eq!(
            q(r#"{resource.service.name="frontend" && duration>100ms}"#),
            vec![
                Condition::Service("frontend".into()),
                Condition::Duration(Comparison::Gt, 100_000_000)
            ]
        );
        assert_eq!(
            q(
                r#"{ name = "GET /cart" && status = error && kind = server && duration <= 1.5s && duration >= 2us }"#
            ),
            vec![
                Condition::Name("GET /cart".into()),
                Condition::Status(StatusCode::Error),
                Condition::Kind(SpanKind::Server),
                Condition::Duration(Comparison::Le, 1_500_000_000),
                Condition::Duration(Comparison::Ge, 2_000),
            ]
        );
        assert_eq!(
            q(
                r#"{span.http.status_code=500 && .retry=true && resource.k8s.ns="a\"b" && span.ratio=2.0 && span."a b"="x"}"#
            ),
            vec![
                attr(Scope::Span, "http.status_code", "500"),
                attr(Scope::Any, "retry", "true"),
                attr(Scope::Resource, "k8s.ns", "a\"b"),
                attr(Scope::Span, "ratio", "2"),
                attr(Scope::Span, "a b", "x"),
            ]
        );
        assert_eq!(
            q("{span:name=`x` && span:status=ok && span:kind=client && span:duration<1s}"),
            vec![
                Condition::Name("x".into()),
                Condition::Status(StatusCode::Ok),
                Condition::Kind(SpanKind::Client),
                Condition::Duration(Comparison::Lt, 1_000_000_000),
            ]
        );
    }

    #[test]
    fn unsupported_queries_say_where_and_what_works() {
        let cases = [
            ("{a=1}", "unsupported field a at column 2"),
            (
                r#"{.a="x" || .b="y"}"#,
                "expected && or } but found \"|| .b=\\\"y\\\"}\" at column 9",
            ),
            (
                r#"{.a!="x"}"#,
                "operator != is not supported here at column 4",
            ),
            (
                r#"{.a=~"x"}"#,
                "operator =~ is not supported here at column 4",
            ),
            (
                "{} >> {}",
                "expected the end of the query after the spanset but found \">> {}\" at column 4",
            ),
            ("{} | count() > 1", "at column 4"),
            (
                "{status=bad}",
                "status needs error, ok or unset at column 9",
            ),
            ("{kind=sideways}", "unknown kind sideways at column 7"),
            (
                "{duration>100}",
                "duration needs a duration such as 100ms at column 11",
            ),
            (
                r#"{name>"x"}"#,
                "name can only be compared with = at column 6",
            ),
            (r#"{name="x"#, "unterminated string at column 7"),
            ("{.a=x}", "x is not a value: quote strings"),
            ("{resource.=1}", "resource. names no attribute at column 2"),
            ("{.a=nil}", "nil is not supported here at column 5"),
            ("rate()", "expected { but found \"rate()\" at column 1"),
            (
                r#"{.a="x""#,
                "expected && or } but found the end at column 8",
            ),
        ];
        for (query, expected) in cases {
            let message = q_err(query);
            assert!(message.contains(expected), "{query}: {message}");
            assert!(
                message.contains("TraceQL is not supported yet"),
                "{message}"
            );
            assert!(message.contains("tags="), "{message}");
        }
    }
}
