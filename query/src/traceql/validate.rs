//! Checks of a parsed query that the grammar cannot express, made before compiling, so that
//! a query Tempo refuses is a 400 that says why rather than SQL that fails to plan or run.
//!
//! The rules are Tempo's (`pkg/traceql/ast_validate.go` and its parser):
//! - a pipeline does not start with `coalesce()`;
//! - a scalar filter compares at least one aggregate (`3 = 2` compares nothing of the spans);
//! - the argument of an aggregate and the fields of `by(...)` refer to the span (an attribute
//!   or an intrinsic), so `sum(3)` and `by(1)` are refused;
//! - an intrinsic or `resource.service.name` is never missing, so `= nil` on them is refused
//!   (`!= nil` is allowed: it is always true).

use super::{
    Aggregate, AttributeScope, BinaryOp, Field, FieldExpr, Literal, Pipeline, Query, ScalarExpr,
    SpansetExpr, Stage,
};
use crate::{Error, Result};

/// Checks `query`; the error names the part of the query that is wrong and why.
pub(crate) fn validate(query: &Query) -> Result<()> {
    pipeline(&query.pipeline)
}

fn pipeline(pipeline: &Pipeline) -> Result<()> {
    if let Some(Stage::Coalesce) = pipeline.stages.first() {
        return Err(Error::BadRequest(
            "q: a pipeline cannot start with coalesce(): it merges the spansets of a stage \
             before it, as in { } | by(name) | coalesce()"
                .into(),
        ));
    }
    for stage in &pipeline.stages {
        match stage {
            Stage::Spanset(expr) => spanset(expr)?,
            Stage::ScalarFilter(filter) => {
                if !has_aggregate(&filter.lhs) && !has_aggregate(&filter.rhs) {
                    return Err(Error::BadRequest(format!(
                        "q: {filter} compares no aggregate of the spans: a pipeline stage such \
                         as count() > 2 or avg(duration) > 1s needs count(), avg(f), min(f), \
                         max(f) or sum(f) on one side"
                    )));
                }
                scalar(&filter.lhs)?;
                scalar(&filter.rhs)?;
            }
            Stage::GroupBy(fields) => {
                for field in fields {
                    if !refers_to_span(field) {
                        return Err(Error::BadRequest(format!(
                            "q: by({field}) does not refer to the span: group by an attribute \
                             or intrinsic, as in by(resource.service.name)"
                        )));
                    }
                    field_expr(field)?;
                }
            }
            Stage::Select(fields) => {
                for field in fields {
                    field_expr(field)?;
                }
            }
            Stage::Coalesce => {}
        }
    }
    Ok(())
}

fn spanset(expr: &SpansetExpr) -> Result<()> {
    match expr {
        SpansetExpr::Filter(filter) => filter.expr.as_ref().map_or(Ok(()), field_expr),
        SpansetExpr::Binary { lhs, rhs, .. } => {
            spanset(lhs)?;
            spanset(rhs)
        }
        SpansetExpr::Pipeline(inner) => pipeline(inner),
    }
}

fn scalar(expr: &ScalarExpr) -> Result<()> {
    match expr {
        ScalarExpr::Literal(_) => Ok(()),
        ScalarExpr::Aggregate(aggregate) => self::aggregate(aggregate),
        ScalarExpr::Binary { lhs, rhs, .. } => {
            scalar(lhs)?;
            scalar(rhs)
        }
        ScalarExpr::Pipeline {
            pipeline: inner,
            aggregate,
        } => {
            pipeline(inner)?;
            self::aggregate(aggregate)
        }
    }
}

fn aggregate(aggregate: &Aggregate) -> Result<()> {
    let argument = match aggregate {
        Aggregate::Count => return Ok(()),
        Aggregate::Avg(f) | Aggregate::Min(f) | Aggregate::Max(f) | Aggregate::Sum(f) => f,
    };
    if !refers_to_span(argument) {
        return Err(Error::BadRequest(format!(
            "q: {aggregate} does not refer to the span: aggregate an attribute or intrinsic, \
             as in avg(duration) or sum(span.bytes)"
        )));
    }
    field_expr(argument)
}

/// Whether a scalar expression has an aggregate (a nested pipeline ends in one).
fn has_aggregate(expr: &ScalarExpr) -> bool {
    match expr {
        ScalarExpr::Literal(_) => false,
        ScalarExpr::Aggregate(_) | ScalarExpr::Pipeline { .. } => true,
        ScalarExpr::Binary { lhs, rhs, .. } => has_aggregate(lhs) || has_aggregate(rhs),
    }
}

/// Whether a field expression reads an attribute or intrinsic of the span.
fn refers_to_span(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Literal(_) => false,
        FieldExpr::Field(_) => true,
        FieldExpr::Unary { operand, .. } => refers_to_span(operand),
        FieldExpr::Binary { lhs, rhs, .. } => refers_to_span(lhs) || refers_to_span(rhs),
    }
}

fn field_expr(expr: &FieldExpr) -> Result<()> {
    match expr {
        FieldExpr::Literal(_) | FieldExpr::Field(_) => Ok(()),
        FieldExpr::Unary { operand, .. } => field_expr(operand),
        FieldExpr::Binary { op, lhs, rhs } => {
            if *op == BinaryOp::Eq {
                let field = match (lhs.as_ref(), rhs.as_ref()) {
                    (FieldExpr::Field(f), FieldExpr::Literal(Literal::Nil))
                    | (FieldExpr::Literal(Literal::Nil), FieldExpr::Field(f)) => Some(f),
                    _ => None,
                };
                match field {
                    Some(Field::Intrinsic(_)) => {
                        return Err(Error::BadRequest(format!(
                            "q: invalid expression {expr}: intrinsics are never nil"
                        )));
                    }
                    Some(Field::Attribute(a))
                        if a.scope == AttributeScope::Resource
                            && !a.parent
                            && a.name == "service.name" =>
                    {
                        return Err(Error::BadRequest(format!(
                            "q: invalid expression {expr}: resource.service.name is never nil"
                        )));
                    }
                    _ => {}
                }
            }
            field_expr(lhs)?;
            field_expr(rhs)
        }
    }
}
