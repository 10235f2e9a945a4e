//! `has_attribute(list, key, value)`: whether one element of a span's `events` or `links` has
//! the attribute `key` with the text `value`. The tag search of the Jaeger and native APIs
//! matches a tag found on the span, its resource, its scope, one of its events or one of its
//! links, as Jaeger does; this is the events-and-links part, one pass over the column instead
//! of an `unnest` joined back to the spans.
//!
//! ```sql
//! SELECT span_name FROM spans WHERE has_attribute(events, 'exception.type', 'IOError')
//! ```

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, ListArray, MapArray, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The SQL name of the function.
pub const HAS_ATTRIBUTE: &str = "has_attribute";

/// The function, to register in a session.
pub fn has_attribute() -> ScalarUDF {
    ScalarUDF::from(HasAttribute {
        signature: Signature::any(3, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct HasAttribute {
    signature: Signature,
}

impl ScalarUDFImpl for HasAttribute {
    fn name(&self) -> &str {
        HAS_ATTRIBUTE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::List(item), key, value]
                if matches!(item.data_type(), DataType::Struct(fields)
                    if fields.iter().any(|f| f.name() == "attributes"))
                    && is_text(key)
                    && is_text(value) =>
            {
                Ok(DataType::Boolean)
            }
            _ => plan_err!(
                "{HAS_ATTRIBUTE}(list, key, value) takes the events or links column and two \
                 strings, not {args:?}"
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [list, key, value] = args.args.as_slice() else {
            return exec_err!("{HAS_ATTRIBUTE} takes three arguments");
        };
        let (Some(key), Some(value)) = (text(key)?, text(value)?) else {
            // A NULL key or value is in no element.
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
        };
        let rows = args.number_rows;
        let list = list.to_array(rows)?;
        let list: &ListArray = list.as_list();
        let items = list.values().as_struct();
        let Some(attributes) = items.column_by_name("attributes") else {
            return exec_err!("{HAS_ATTRIBUTE}: the elements have no attributes");
        };
        let attributes: &MapArray = attributes.as_map();
        // Per element, whether it has the attribute; then per row, whether one of its
        // elements does.
        let found = element_matches(attributes, &key, &value);
        let offsets = list.offsets();
        let out: BooleanArray = (0..list.len())
            .map(|row| {
                if list.is_null(row) {
                    return Some(false);
                }
                let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
                Some(found[from..to].iter().any(|f| *f))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

fn is_text(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// A constant text argument.
fn text(arg: &ColumnarValue) -> Result<Option<String>> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
        ) => Ok(v.clone()),
        ColumnarValue::Scalar(ScalarValue::Null) => Ok(None),
        _ => exec_err!("{HAS_ATTRIBUTE}: the key and the value must be constants"),
    }
}

/// For each map of `attributes`, whether it holds `key` with the text `value`.
fn element_matches(attributes: &MapArray, key: &str, value: &str) -> Vec<bool> {
    let keys: &StringArray = attributes.keys().as_string();
    let values: &StringArray = attributes.values().as_string();
    let offsets = attributes.offsets();
    (0..attributes.len())
        .map(|element| {
            if attributes.is_null(element) {
                return false;
            }
            let (from, to) = (offsets[element] as usize, offsets[element + 1] as usize);
            (from..to)
                .any(|e| keys.value(e) == key && values.is_valid(e) && values.value(e) == value)
        })
        .collect()
}
