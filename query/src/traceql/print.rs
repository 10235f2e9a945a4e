//! Canonical printing of the syntax tree.
//!
//! The output uses single spaces around binary operators and inside non-empty braces,
//! parentheses only where precedence needs them, the canonical name of each intrinsic,
//! double-quoted strings, and durations in the largest exact unit. Parsing the output gives
//! back the same tree.

use std::fmt::{self, Display, Formatter, Write as _};

use super::ast::{
    Aggregate, ArithmeticOp, Attribute, AttributeScope, BinaryOp, ComparisonOp, Field, FieldExpr,
    Hint, Intrinsic, Literal, MetricsFunction, MetricsMath, MetricsQuery, PREC_ATOM,
    PREC_MULTIPLICATIVE, PREC_UNARY, Pipeline, Query, ScalarExpr, ScalarFilter, SecondStage,
    SpanKind, SpansetExpr, SpansetFilter, SpansetOp, Stage, Status, Threshold, UnaryOp,
};
use super::lexer::is_attribute_char;

/// Writes `value`, in parentheses when `parenthesize` is set.
fn write_grouped(f: &mut Formatter<'_>, value: &dyn Display, parenthesize: bool) -> fmt::Result {
    if parenthesize {
        write!(f, "({value})")
    } else {
        write!(f, "{value}")
    }
}

/// Writes `lhs op rhs`, parenthesizing operands that bind more loosely than the operator.
fn write_binary(
    f: &mut Formatter<'_>,
    (lhs, lhs_prec): (&dyn Display, u8),
    symbol: &str,
    prec: u8,
    right_associative: bool,
    (rhs, rhs_prec): (&dyn Display, u8),
) -> fmt::Result {
    let (lhs_parens, rhs_parens) = if right_associative {
        (lhs_prec <= prec, rhs_prec < prec)
    } else {
        (lhs_prec < prec, rhs_prec <= prec)
    };
    write_grouped(f, lhs, lhs_parens)?;
    write!(f, " {symbol} ")?;
    write_grouped(f, rhs, rhs_parens)
}

/// Writes items separated by `, `.
fn write_list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(math) = &self.math {
            write!(f, "{}", math.expr)?;
            if let Some(threshold) = &math.threshold {
                write!(f, " {threshold}")?;
            }
            if let Some(second_stage) = &math.second_stage {
                write!(f, " | {second_stage}")?;
            }
            if let Some(threshold) = &math.second_threshold {
                write!(f, " {threshold}")?;
            }
        } else {
            write!(f, "{}", self.pipeline)?;
            if let Some(metrics) = &self.metrics {
                write!(f, " | {metrics}")?;
            }
        }
        if !self.hints.is_empty() {
            f.write_str(" with (")?;
            write_list(f, &self.hints)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for Hint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}", self.name, self.value)
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (index, stage) in self.stages.iter().enumerate() {
            if index > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spanset(expr) => write!(f, "{expr}"),
            Stage::ScalarFilter(filter) => write!(f, "{filter}"),
            Stage::GroupBy(fields) => {
                f.write_str("by(")?;
                write_list(f, fields)?;
                f.write_str(")")
            }
            Stage::Select(fields) => {
                f.write_str("select(")?;
                write_list(f, fields)?;
                f.write_str(")")
            }
            Stage::Coalesce => f.write_str("coalesce()"),
        }
    }
}

fn spanset_precedence(expr: &SpansetExpr) -> u8 {
    match expr {
        SpansetExpr::Binary { op, .. } => op.precedence(),
        SpansetExpr::Filter(_) | SpansetExpr::Pipeline(_) => PREC_ATOM,
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(filter) => write!(f, "{filter}"),
            SpansetExpr::Pipeline(pipeline) => write!(f, "({pipeline})"),
            SpansetExpr::Binary { op, lhs, rhs } => write_binary(
                f,
                (lhs.as_ref(), spanset_precedence(lhs)),
                op.symbol(),
                op.precedence(),
                false,
                (rhs.as_ref(), spanset_precedence(rhs)),
            ),
        }
    }
}

impl Display for SpansetFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Some(expr) => write!(f, "{{ {expr} }}"),
            None => f.write_str("{}"),
        }
    }
}

impl Display for SpansetOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // Arithmetic always binds tighter than the comparison: no parentheses needed.
        write!(f, "{} {} {}", self.lhs, self.op, self.rhs)
    }
}

impl Display for ComparisonOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

fn scalar_precedence(expr: &ScalarExpr) -> u8 {
    match expr {
        ScalarExpr::Binary { op, .. } => op.precedence(),
        _ => PREC_ATOM,
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Literal(literal) => write!(f, "{literal}"),
            ScalarExpr::Aggregate(aggregate) => write!(f, "{aggregate}"),
            ScalarExpr::Pipeline {
                pipeline,
                aggregate,
            } => write!(f, "({pipeline} | {aggregate})"),
            ScalarExpr::Binary { op, lhs, rhs } => write_binary(
                f,
                (lhs.as_ref(), scalar_precedence(lhs)),
                op.symbol(),
                op.precedence(),
                op.as_binary().is_right_associative(),
                (rhs.as_ref(), scalar_precedence(rhs)),
            ),
        }
    }
}

impl Display for ArithmeticOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Count => f.write_str("count()"),
            Aggregate::Avg(field) => write!(f, "avg({field})"),
            Aggregate::Min(field) => write!(f, "min({field})"),
            Aggregate::Max(field) => write!(f, "max({field})"),
            Aggregate::Sum(field) => write!(f, "sum({field})"),
        }
    }
}

fn field_precedence(expr: &FieldExpr) -> u8 {
    match expr {
        FieldExpr::Binary { op, .. } => op.precedence(),
        FieldExpr::Unary { .. } => PREC_UNARY,
        FieldExpr::Literal(_) | FieldExpr::Field(_) => PREC_ATOM,
    }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Literal(literal) => write!(f, "{literal}"),
            FieldExpr::Field(field) => write!(f, "{field}"),
            FieldExpr::Unary { op, operand } => {
                f.write_str(op.symbol())?;
                // The operand of a prefix operator takes only `* / % ^` operations.
                write_grouped(
                    f,
                    operand.as_ref(),
                    field_precedence(operand) < PREC_MULTIPLICATIVE,
                )
            }
            FieldExpr::Binary { op, lhs, rhs } => write_binary(
                f,
                (lhs.as_ref(), field_precedence(lhs)),
                op.symbol(),
                op.precedence(),
                op.is_right_associative(),
                (rhs.as_ref(), field_precedence(rhs)),
            ),
        }
    }
}

impl Display for UnaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl Display for Field {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Field::Intrinsic(intrinsic) => write!(f, "{intrinsic}"),
            Field::Attribute(attribute) => write!(f, "{attribute}"),
        }
    }
}

impl Display for Intrinsic {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical_name())
    }
}

impl Attribute {
    /// Whether the name must be quoted to read back as the same attribute.
    fn name_needs_quotes(&self) -> bool {
        let name = &self.name;
        let Some(first) = name.chars().next() else {
            return true;
        };
        if !name.chars().all(is_attribute_char) {
            return true;
        }
        match (self.parent, self.scope) {
            // `.5xx` would read as the number `.5` followed by `xx`.
            (false, AttributeScope::None) => first.is_ascii_digit(),
            // `parent.span.x` would read as the span attribute `x` of the parent.
            (true, AttributeScope::None) => {
                name.starts_with("span.") || name.starts_with("resource.")
            }
            _ => false,
        }
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.parent {
            f.write_str("parent.")?;
            if self.scope != AttributeScope::None {
                f.write_str(self.scope.prefix())?;
            }
        } else {
            f.write_str(self.scope.prefix())?;
        }
        if self.name_needs_quotes() {
            f.write_char('"')?;
            for c in self.name.chars() {
                if matches!(c, '"' | '\\') {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char('"')
        } else {
            f.write_str(&self.name)
        }
    }
}

impl Display for AttributeScope {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// Writes a float so that it reads back as a float (always with a `.`).
fn write_float(f: &mut Formatter<'_>, value: f64) -> fmt::Result {
    let text = value.to_string();
    if text.contains(['.', 'e', 'E']) || !value.is_finite() {
        f.write_str(&text)
    } else {
        write!(f, "{text}.0")
    }
}

/// Writes a duration in the largest unit that divides it exactly.
fn write_duration(f: &mut Formatter<'_>, nanos: i64) -> fmt::Result {
    const UNITS: [(u64, &str); 6] = [
        (3_600_000_000_000, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
        (1, "ns"),
    ];
    if nanos < 0 {
        f.write_char('-')?;
    }
    let magnitude = nanos.unsigned_abs();
    if magnitude == 0 {
        return f.write_str("0s");
    }
    let (unit, suffix) = UNITS
        .into_iter()
        .find(|(unit, _)| magnitude.is_multiple_of(*unit))
        .unwrap_or((1, "ns"));
    write!(f, "{}{suffix}", magnitude / unit)
}

/// Writes a double-quoted string literal with escapes.
fn write_string(f: &mut Formatter<'_>, value: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => {
                if (c as u32) < 0x80 {
                    write!(f, "\\x{:02x}", c as u32)?;
                } else {
                    write!(f, "\\u{:04x}", c as u32)?;
                }
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(value) => write_string(f, value),
            Literal::Int(i64::MIN) => f.write_str("minInt"),
            Literal::Int(value) => write!(f, "{value}"),
            Literal::Float(value) => write_float(f, *value),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Nil => f.write_str("nil"),
            Literal::Duration { nanos } => write_duration(f, *nanos),
            Literal::Status(status) => write!(f, "{status}"),
            Literal::Kind(kind) => write!(f, "{kind}"),
        }
    }
}

impl Display for Status {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Display for SpanKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

impl Display for MetricsQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.function)?;
        if !self.by.is_empty() {
            f.write_str(" by (")?;
            write_list(f, &self.by)?;
            f.write_str(")")?;
        }
        if let Some(threshold) = &self.threshold {
            write!(f, " {threshold}")?;
        }
        if let Some(second_stage) = &self.second_stage {
            write!(f, " | {second_stage}")?;
        }
        if let Some(threshold) = &self.second_threshold {
            write!(f, " {threshold}")?;
        }
        Ok(())
    }
}

impl Display for MetricsMath {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsMath::Query(query) => write!(f, "({query})"),
            MetricsMath::Number(Literal::Float(value)) => write_float(f, *value),
            MetricsMath::Number(Literal::Int(value)) => write!(f, "{value}"),
            MetricsMath::Number(literal) => write!(f, "{literal}"),
            // Operands that are operations are parenthesized: the tree reads back the same.
            MetricsMath::Binary { op, lhs, rhs } => {
                let operand = |f: &mut Formatter<'_>, e: &MetricsMath| match e {
                    MetricsMath::Binary { .. } => write!(f, "({e})"),
                    _ => write!(f, "{e}"),
                };
                operand(f, lhs)?;
                write!(f, " {op} ")?;
                operand(f, rhs)
            }
        }
    }
}

impl Display for Threshold {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.op)?;
        write_float(f, self.value)
    }
}

impl Display for MetricsFunction {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricsFunction::Rate => f.write_str("rate()"),
            MetricsFunction::CountOverTime => f.write_str("count_over_time()"),
            MetricsFunction::MinOverTime(field) => write!(f, "min_over_time({field})"),
            MetricsFunction::MaxOverTime(field) => write!(f, "max_over_time({field})"),
            MetricsFunction::AvgOverTime(field) => write!(f, "avg_over_time({field})"),
            MetricsFunction::SumOverTime(field) => write!(f, "sum_over_time({field})"),
            MetricsFunction::HistogramOverTime(field) => {
                write!(f, "histogram_over_time({field})")
            }
            MetricsFunction::Compare {
                selection,
                top_n,
                range,
            } => {
                write!(f, "compare({selection}, {top_n}")?;
                if let Some((start, end)) = range {
                    write!(f, ", {start}, {end}")?;
                }
                f.write_str(")")
            }
            MetricsFunction::QuantileOverTime { field, quantiles } => {
                write!(f, "quantile_over_time({field}")?;
                for quantile in quantiles {
                    f.write_str(", ")?;
                    write_float(f, *quantile)?;
                }
                f.write_str(")")
            }
        }
    }
}

impl Display for SecondStage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SecondStage::TopK(limit) => write!(f, "topk({limit})"),
            SecondStage::BottomK(limit) => write!(f, "bottomk({limit})"),
        }
    }
}
