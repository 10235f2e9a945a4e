//! `tql_array_match(value, type, op, literal)`: TraceQL comparisons on array attributes.
//!
//! Attributes are stored as text; an array is its OTLP/JSON `ArrayValue`
//! (`{"values":[{"intValue":"1"},{"stringValue":"a"}]}`) with the type `array`. As in Tempo, a
//! comparison with a value holds when an element satisfies it (`=`, `=~`, `<`, ...), and `!=` /
//! `!~` hold when no element satisfies the positive form. Elements are compared with values of
//! their kind: strings with strings, ints and doubles with numbers, bools with bools. The
//! function is false for values that are not arrays (the compiler compares those itself).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use serde_json::Value as Json;

use super::BinaryOp;

/// The name SQL calls the function by.
pub const NAME: &str = "tql_array_match";

/// The function, ready to register on a session.
pub fn udf() -> ScalarUDF {
    ScalarUDF::from(ArrayMatch {
        signature: Signature::any(4, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayMatch {
    signature: Signature,
}

impl ScalarUDFImpl for ArrayMatch {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [values, types, op, literal] = args.args.as_slice() else {
            return exec_err!("{NAME} takes (value, type, op, literal)");
        };
        let rows = args.number_rows;
        if rows == 0 {
            return Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(Vec::<
                bool,
            >::new(
            )))));
        }
        // The operator and the literal are constants of the query: read once, not per row
        // (from the first row where the planner left them as arrays).
        let constant = |v: &ColumnarValue| -> Result<ScalarValue> {
            match v {
                ColumnarValue::Scalar(s) => Ok(s.clone()),
                ColumnarValue::Array(a) => ScalarValue::try_from_array(a, 0),
            }
        };
        let (op, literal) = (constant(op)?, constant(literal)?);
        let Some(op) = op
            .try_as_str()
            .flatten()
            .and_then(|op| BinaryOp::ALL.into_iter().find(|o| o.symbol() == op))
        else {
            return exec_err!("{NAME}: unknown operator {op}");
        };
        let literal_text = if literal.is_null() {
            None
        } else {
            Some(literal.to_string())
        };
        let literal = match (&literal_text, literal.data_type()) {
            (None, _) => None,
            (Some(t), DataType::Boolean) => Some(Literal::Bool(t == "true")),
            (Some(t), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
                Some(Literal::Str(t))
            }
            (Some(t), _) => t.parse::<f64>().ok().map(Literal::Num),
        };
        let Some(literal) = literal else {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::Boolean(Some(false)),
            ));
        };
        let text = |a: ArrayRef| -> Result<ArrayRef> {
            Ok(if a.data_type() == &DataType::Utf8 {
                a
            } else {
                arrow::compute::cast(&a, &DataType::Utf8)?
            })
        };
        let (values, types) = (text(values.to_array(rows)?)?, text(types.to_array(rows)?)?);
        let (values, types) = (values.as_string::<i32>(), types.as_string::<i32>());
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            // Most rows are no array: one comparison each.
            let is_array = types.is_valid(row) && types.value(row) == "array";
            out.push(is_array && values.is_valid(row) && matches(values.value(row), op, &literal)?);
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

/// The value an array's elements are compared with.
enum Literal<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
}

/// Whether the array `json` satisfies `op literal` (see the module doc).
fn matches(json: &str, op: BinaryOp, literal: &Literal<'_>) -> Result<bool> {
    let Ok(parsed) = serde_json::from_str::<Json>(json) else {
        return Ok(false);
    };
    let elements = parsed
        .get("values")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let (positive, negated) = match op {
        BinaryOp::Neq => (BinaryOp::Eq, true),
        BinaryOp::NotRegex => (BinaryOp::Regex, true),
        other => (other, false),
    };
    // As for a single value, `!=` and `!~` compare only with values of the literal's kind:
    // an array with no element of that kind (or none at all) matches neither form.
    if negated && !elements.iter().any(|e| of_kind(e, literal)) {
        return Ok(false);
    }
    let any = if positive == BinaryOp::Regex {
        let Literal::Str(pattern) = literal else {
            return Ok(false);
        };
        let strings: StringArray = elements
            .iter()
            .filter_map(|e| e.get("stringValue").and_then(Json::as_str))
            .map(Some)
            .collect();
        // The compiler passes the pattern already anchored.
        let hits =
            arrow::compute::kernels::regexp::regexp_is_match_scalar(&strings, pattern, None)?;
        hits.true_count() > 0
    } else {
        elements
            .iter()
            .any(|e| element_matches(e, positive, literal))
    };
    Ok(any != negated)
}

/// Whether `element` is of the kind `literal` is compared with.
fn of_kind(element: &Json, literal: &Literal<'_>) -> bool {
    match literal {
        Literal::Str(_) => element.get("stringValue").is_some(),
        Literal::Num(_) => {
            element.get("intValue").is_some() || element.get("doubleValue").is_some()
        }
        Literal::Bool(_) => element.get("boolValue").is_some(),
    }
}

fn element_matches(element: &Json, op: BinaryOp, literal: &Literal<'_>) -> bool {
    use std::cmp::Ordering;
    let ordering = match literal {
        Literal::Str(s) => element
            .get("stringValue")
            .and_then(Json::as_str)
            .map(|e| e.cmp(s)),
        Literal::Num(n) => element
            .get("intValue")
            .and_then(|v| {
                v.as_str()
                    .and_then(|t| t.parse::<i64>().ok())
                    .or(v.as_i64())
            })
            .map(|i| i as f64)
            .or_else(|| element.get("doubleValue").and_then(Json::as_f64))
            .and_then(|e| e.partial_cmp(n)),
        Literal::Bool(b) => element
            .get("boolValue")
            .and_then(Json::as_bool)
            .filter(|_| matches!(op, BinaryOp::Eq))
            .map(|e| {
                if e == *b {
                    Ordering::Equal
                } else {
                    Ordering::Less
                }
            }),
    };
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        BinaryOp::Eq => ordering == Ordering::Equal,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::Lte => ordering != Ordering::Greater,
        BinaryOp::Gt => ordering == Ordering::Greater,
        BinaryOp::Gte => ordering != Ordering::Less,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTS: &str = r#"{"values":[{"intValue":"111"},{"intValue":"222"}]}"#;
    const STRS: &str = r#"{"values":[{"stringValue":"value-one"},{"stringValue":"value-three"}]}"#;

    #[test]
    fn any_element_satisfies_the_positive_forms() {
        let num = Literal::Num(222.0);
        assert!(matches(INTS, BinaryOp::Eq, &num).unwrap());
        assert!(!matches(INTS, BinaryOp::Neq, &num).unwrap());
        assert!(matches(INTS, BinaryOp::Neq, &Literal::Num(5.0)).unwrap());
        assert!(matches(INTS, BinaryOp::Gt, &Literal::Num(200.0)).unwrap());
        assert!(!matches(INTS, BinaryOp::Gt, &Literal::Num(222.0)).unwrap());
        assert!(!matches(INTS, BinaryOp::Eq, &Literal::Str("222")).unwrap());
        let three = Literal::Str("value-three");
        assert!(matches(STRS, BinaryOp::Eq, &three).unwrap());
        assert!(matches(STRS, BinaryOp::Regex, &Literal::Str("^(?:value-t.*)$")).unwrap());
        assert!(!matches(STRS, BinaryOp::NotRegex, &Literal::Str("^(?:value-t.*)$")).unwrap());
        assert!(matches(STRS, BinaryOp::NotRegex, &Literal::Str("^(?:x.*)$")).unwrap());
        assert!(!matches("not json", BinaryOp::Eq, &three).unwrap());
    }

    /// `!=` and `!~` compare with elements of the literal's kind only, as a single value does:
    /// an int array is neither `= "x"` nor `!= "x"`, and an empty array matches no `!=`.
    #[test]
    fn negations_need_an_element_of_the_literal_kind() {
        assert!(!matches(INTS, BinaryOp::Neq, &Literal::Str("x")).unwrap());
        assert!(!matches(INTS, BinaryOp::NotRegex, &Literal::Str("^(?:.*)$")).unwrap());
        assert!(!matches(STRS, BinaryOp::Neq, &Literal::Num(1.0)).unwrap());
        assert!(!matches(r#"{"values":[]}"#, BinaryOp::Neq, &Literal::Num(1.0)).unwrap());
        assert!(matches(STRS, BinaryOp::Neq, &Literal::Str("x")).unwrap());
    }
}
