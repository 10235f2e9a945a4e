//! TraceQL, the trace query language of Grafana Tempo: a parser, a compiler to DataFusion SQL
//! ([`compile`]) and the search that runs it ([`search`]).
//!
//! [`parse`] turns query text into a [`Query`] syntax tree; the tree's
//! [`Display`](std::fmt::Display) prints it back in a canonical form that parses to the same
//! tree. Errors are [`ParseError`]s that say where (byte offset, line, column) and what was
//! expected.
//!
//! ```
//! use spanlake_query::traceql::{self, Stage};
//!
//! let query = traceql::parse(r#"{ span.http.method = "GET" && duration > 1.5s } | count() > 2"#)?;
//! assert!(matches!(query.pipeline.stages[1], Stage::ScalarFilter(_)));
//! assert_eq!(
//!     query.to_string(),
//!     r#"{ span.http.method = "GET" && duration > 1500ms } | count() > 2"#
//! );
//! # Ok::<(), traceql::ParseError>(())
//! ```
//!
//! # Language
//!
//! The accepted language follows Tempo's grammar (`pkg/traceql/expr.y`) and documentation:
//!
//! - **Spanset filters** `{ ... }` (or `{}`) hold field expressions over intrinsics (`name`,
//!   `status`, `kind`, `duration`, `span:id`, `trace:rootService`, `event:name`,
//!   `link:traceID`, ...), attributes (`span.x`, `resource.x`, `event.x`, `link.x`,
//!   `instrumentation.x`, unscoped `.x`, `parent.x`, quoted parts as in `span."a b"`) and
//!   literals (strings in `"..."` or `` `...` ``, integers, floats, `true`, `false`, `nil`,
//!   durations such as `150ms` or `1.5s`, status and kind keywords, `minInt`, `maxInt`).
//! - **Operators**, loosest first: `&&` and `||` (one level, left to right, as in Tempo);
//!   comparisons `= != < <= > >= =~ !~`; `+ -`; `* / %`; `^` (right-associative). A prefix
//!   `!` or `-` applies to an operand together with its `* / % ^` operations.
//! - **Spanset operators** between spansets: `&&`, `||` and, binding tighter, the structural
//!   `>> > << < ~`, their negations `!>> !> !<< !< !~` and union forms `&>> &> &<< &< &~`.
//! - **Pipelines** `a | b | ...` with spanset expressions, scalar filters (`count() > 2`,
//!   `avg(duration) > 1s`, `({ a } | count()) > ({ b } | count())`), `by(...)`,
//!   `select(...)` and `coalesce()`; parenthesized pipelines are spanset operands, as in
//!   `({ a } | count() > 1) && { b }`.
//! - **Metrics**: a final `| rate()`, `count_over_time()`, `min_over_time(f)`,
//!   `max_over_time(f)`, `avg_over_time(f)`, `sum_over_time(f)`,
//!   `quantile_over_time(f, q, ...)` or `histogram_over_time(f)`, optionally with
//!   `by (f, ...)` and a second stage `| topk(n)` or `| bottomk(n)`.
//! - **Hints**: a trailing `with (name = value, ...)`.
//! - Whitespace and `//` or `/* */` comments separate tokens.
//!
//! Nesting of parentheses, braces and prefix operators is limited to [`MAX_NESTING`] levels
//! and the syntax tree to [`MAX_TREE_DEPTH`] levels, so hostile input gives a [`ParseError`]
//! rather than exhausting the stack.

pub(crate) mod arrays;
mod ast;
mod compile;
#[cfg(test)]
mod golden;
mod lexer;
pub mod metrics;
mod parser;
mod print;
pub mod search;
pub(crate) mod structural;
#[cfg(test)]
mod tests;
mod validate;

pub use ast::{
    Aggregate, ArithmeticOp, Attribute, AttributeScope, BinaryOp, ComparisonOp, Field, FieldExpr,
    Hint, Intrinsic, Literal, MetricsArithmetic, MetricsFunction, MetricsMath, MetricsQuery,
    Pipeline, Query, ScalarExpr, ScalarFilter, SecondStage, SpanKind, SpansetExpr, SpansetFilter,
    SpansetOp, Stage, Status, Threshold, UnaryOp,
};
pub use compile::{Compiled, CompiledMetrics, Output, compile, compile_metrics};
pub use parser::{MAX_MATH_DEPTH, MAX_MATH_QUERIES, MAX_NESTING, MAX_TREE_DEPTH, ParseError};

/// Parses a TraceQL query.
///
/// # Errors
///
/// A [`ParseError`] naming the position of the first problem and what was expected there.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    parser::parse_query(input)
}
