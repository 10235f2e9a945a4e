//! Dedicated attribute columns: the common span attributes ([`DEDICATED_ATTRIBUTES`]) that
//! Parquet files keep out of the `attributes` map, one column per key. [`split`] takes them
//! out when a file is written, [`merge`] puts them back when it is read, so that everything
//! above the files sees one `attributes` map as before.
//!
//! A key moves to its column only where a span has it exactly once and with a value; a span
//! that repeats a key (OTLP forbids it, but nothing is dropped for it) keeps every occurrence
//! in the map, and the file counts such spans in its key-value metadata
//! ([`LEFT_IN_MAP_KEY`]), so that a reader knows whether the map can still hold a dedicated
//! key's value. Merged back, a span's dedicated attributes come after its other ones: OTLP
//! attributes are a set, and their order is not kept.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, StringArray, StructArray, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::DataType;

use crate::schema::DEDICATED_ATTRIBUTES;
use crate::{Error, Result};

/// Parquet key-value metadata: how many spans of the file kept a dedicated key in the map
/// (because they repeat it). Version 3 files always carry it.
pub const LEFT_IN_MAP_KEY: &str = "spanlake.dedicated_left_in_map";

/// Position of `key` in [`DEDICATED_ATTRIBUTES`].
pub fn index_of(key: &str) -> Option<usize> {
    // A match compiles to length checks first: most keys fail without a byte compared.
    Some(match key {
        "http.request.method" => 0,
        "http.response.status_code" => 1,
        "http.route" => 2,
        "url.scheme" => 3,
        "url.path" => 4,
        "server.address" => 5,
        "server.port" => 6,
        "user_agent.original" => 7,
        "error.type" => 8,
        "db.system" => 9,
        "db.system.name" => 10,
        "db.operation.name" => 11,
        "db.query.text" => 12,
        "rpc.system" => 13,
        "rpc.service" => 14,
        "rpc.method" => 15,
        "messaging.system" => 16,
        "messaging.destination.name" => 17,
        _ => return None,
    })
}

/// The column that holds `key`'s values in files, if it is a dedicated key.
pub fn column_of(key: &str) -> Option<&'static str> {
    index_of(key).map(|i| DEDICATED_ATTRIBUTES[i].1)
}

/// An `attributes` map with the dedicated keys taken out.
pub struct Split {
    /// The rest of the map.
    pub attributes: MapArray,
    /// One Utf8 column per [`DEDICATED_ATTRIBUTES`] entry, null where a span does not have
    /// the key (or keeps it in the map).
    pub columns: Vec<ArrayRef>,
    /// Spans that repeat a dedicated key, which stays in the map.
    pub left_in_map: usize,
}

fn map_parts(map: &MapArray) -> Result<(&StringArray, &StringArray)> {
    let keys = map
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Internal("attribute keys are not utf8".into()))?;
    let values = map
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Internal("attribute values are not utf8".into()))?;
    Ok((keys, values))
}

fn rebuilt(
    map: &MapArray,
    offsets: Vec<i32>,
    keys: ArrayRef,
    values: ArrayRef,
) -> Result<MapArray> {
    let DataType::Map(field, ordered) = map.data_type() else {
        return Err(Error::Internal("attributes are not a map".into()));
    };
    let DataType::Struct(fields) = field.data_type() else {
        return Err(Error::Internal("map entries are not a struct".into()));
    };
    let entries = StructArray::try_new(fields.clone(), vec![keys, values], None)?;
    Ok(MapArray::try_new(
        Arc::clone(field),
        OffsetBuffer::new(offsets.into()),
        entries,
        map.nulls().cloned(),
        *ordered,
    )?)
}

/// Takes the dedicated keys out of `map` (a span attributes map of the span schema).
pub fn split(map: &MapArray) -> Result<Split> {
    const NONE: u8 = u8::MAX;
    let (keys, values) = map_parts(map)?;
    let offsets = map.value_offsets();
    let rows = map.len();
    let mut kept: Vec<u32> = Vec::with_capacity(keys.len());
    let mut kept_offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    kept_offsets.push(0);
    // Per dedicated key, the entry of each row that moves to its column (allocated on first use).
    let mut picks: Vec<Vec<Option<u32>>> = vec![Vec::new(); DEDICATED_ATTRIBUTES.len()];
    let mut left_in_map = 0;
    let mut row_keys: Vec<u8> = Vec::new();
    for row in 0..rows {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        row_keys.clear();
        let (mut seen, mut twice) = (0u32, 0u32);
        for i in start..end {
            let d = index_of(keys.value(i)).map_or(NONE, |d| d as u8);
            if d != NONE {
                let bit = 1u32 << d;
                twice |= seen & bit;
                seen |= bit;
            }
            row_keys.push(d);
        }
        if twice != 0 {
            left_in_map += 1;
        }
        for (i, &d) in (start..end).zip(&row_keys) {
            let moves = d != NONE && twice & (1 << d) == 0 && values.is_valid(i);
            if moves {
                let column = &mut picks[d as usize];
                if column.is_empty() {
                    column.resize(rows, None);
                }
                column[row] = Some(i as u32);
            } else {
                kept.push(i as u32);
            }
        }
        kept_offsets.push(kept.len() as i32);
    }
    let columns = picks
        .into_iter()
        .map(|rows_of| {
            if rows_of.is_empty() {
                Ok(arrow::array::new_null_array(&DataType::Utf8, rows))
            } else {
                Ok(arrow::compute::take(
                    values,
                    &UInt32Array::from(rows_of),
                    None,
                )?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let attributes = if kept.len() == end_of(offsets) - start_of(offsets) {
        map.clone()
    } else {
        let kept = UInt32Array::from(kept);
        rebuilt(
            map,
            kept_offsets,
            arrow::compute::take(keys, &kept, None)?,
            arrow::compute::take(values, &kept, None)?,
        )?
    };
    Ok(Split {
        attributes,
        columns,
        left_in_map,
    })
}

fn start_of(offsets: &[i32]) -> usize {
    offsets.first().map_or(0, |&o| o as usize)
}

fn end_of(offsets: &[i32]) -> usize {
    offsets.last().map_or(0, |&o| o as usize)
}

/// Puts the dedicated columns back into `map`: `columns` holds one array per
/// [`DEDICATED_ATTRIBUTES`] entry, in order (Utf8, or all null where a file has no such
/// column). Each span's dedicated attributes come after its others.
pub fn merge(map: &MapArray, columns: &[ArrayRef]) -> Result<MapArray> {
    if columns.len() != DEDICATED_ATTRIBUTES.len() {
        return Err(Error::Internal(format!(
            "{} dedicated attribute columns, expected {}",
            columns.len(),
            DEDICATED_ATTRIBUTES.len()
        )));
    }
    let rows = map.len();
    // The columns with a value anywhere, as Utf8 (a scan may hand over another string type).
    let mut present: Vec<(usize, ArrayRef)> = Vec::new();
    for (d, column) in columns.iter().enumerate() {
        if column.len() != rows {
            return Err(Error::Internal(format!(
                "dedicated attribute column of {} rows for {rows} spans",
                column.len()
            )));
        }
        if column.logical_null_count() == rows {
            continue;
        }
        let column = match column.data_type() {
            DataType::Utf8 => Arc::clone(column),
            _ => arrow::compute::cast(column, &DataType::Utf8)?,
        };
        present.push((d, column));
    }
    if present.is_empty() {
        return Ok(map.clone());
    }
    let (keys, values) = map_parts(map)?;
    let names = StringArray::from_iter_values(DEDICATED_ATTRIBUTES.iter().map(|(key, _)| *key));
    let offsets = map.value_offsets();
    let mut key_at: Vec<(usize, usize)> = Vec::with_capacity(keys.len() + rows * present.len());
    let mut value_at: Vec<(usize, usize)> = Vec::with_capacity(key_at.capacity());
    let mut merged_offsets: Vec<i32> = Vec::with_capacity(rows + 1);
    merged_offsets.push(0);
    for row in 0..rows {
        for i in offsets[row] as usize..offsets[row + 1] as usize {
            key_at.push((0, i));
            value_at.push((0, i));
        }
        for (source, (d, column)) in present.iter().enumerate() {
            if column.is_valid(row) {
                key_at.push((1, *d));
                value_at.push((1 + source, row));
            }
        }
        merged_offsets.push(
            i32::try_from(key_at.len())
                .map_err(|_| Error::Internal("over 2^31 attributes in one batch".into()))?,
        );
    }
    let key_sources: [&dyn Array; 2] = [keys, &names];
    let mut value_sources: Vec<&dyn Array> = vec![values];
    value_sources.extend(present.iter().map(|(_, c)| c.as_ref()));
    rebuilt(
        map,
        merged_offsets,
        arrow::compute::interleave(&key_sources, &key_at)?,
        arrow::compute::interleave(&value_sources, &value_at)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{col, span_schema};
    use arrow::array::{MapBuilder, StringBuilder};

    fn attributes(rows: &[&[(&str, Option<&str>)]]) -> MapArray {
        let field = span_schema()
            .field_with_name(col::ATTRIBUTES)
            .unwrap()
            .clone();
        let DataType::Map(entries, _) = field.data_type() else {
            unreachable!()
        };
        let DataType::Struct(fields) = entries.data_type() else {
            unreachable!()
        };
        let names = arrow::array::MapFieldNames {
            entry: entries.name().clone(),
            key: fields[0].name().clone(),
            value: fields[1].name().clone(),
        };
        let mut b = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
            .with_values_field(Arc::clone(&fields[1]));
        for row in rows {
            for (k, v) in *row {
                b.keys().append_value(k);
                b.values().append_option(*v);
            }
            b.append(true).unwrap();
        }
        b.finish()
    }

    /// Each row's entries as sorted (key, value) pairs.
    fn entries(map: &MapArray) -> Vec<Vec<(String, Option<String>)>> {
        (0..map.len())
            .map(|row| {
                let e = map.value(row);
                let (k, v) = (
                    e.column(0).as_string::<i32>(),
                    e.column(1).as_string::<i32>(),
                );
                let mut pairs: Vec<_> = (0..e.len())
                    .map(|i| {
                        (
                            k.value(i).to_string(),
                            v.is_valid(i).then(|| v.value(i).to_string()),
                        )
                    })
                    .collect();
                pairs.sort();
                pairs
            })
            .collect()
    }

    #[test]
    fn dedicated_keys_move_to_columns_and_merge_back() {
        let map = attributes(&[
            &[
                ("http.route", Some("/a")),
                ("session.id", Some("s1")),
                ("server.port", Some("80")),
            ],
            &[],
            &[("session.id", Some("s2"))],
            // Repeated: both stay in the map, and the span is counted.
            &[
                ("http.route", Some("/b")),
                ("http.route", Some("/c")),
                ("url.scheme", Some("https")),
            ],
            // Without a value: stays in the map.
            &[("http.route", None), ("db.system", Some("postgresql"))],
        ]);
        let split = split(&map).unwrap();
        assert_eq!(split.left_in_map, 1);
        assert_eq!(split.columns.len(), DEDICATED_ATTRIBUTES.len());
        let route = split.columns[index_of("http.route").unwrap()].as_string::<i32>();
        let route: Vec<Option<&str>> = route.iter().collect();
        assert_eq!(route, [Some("/a"), None, None, None, None]);
        let scheme = split.columns[index_of("url.scheme").unwrap()].as_string::<i32>();
        assert_eq!(scheme.value(3), "https");
        assert_eq!(
            split.columns[index_of("rpc.method").unwrap()].null_count(),
            5
        );
        let rest = entries(&split.attributes);
        assert_eq!(
            rest[0],
            [("session.id".to_string(), Some("s1".to_string()))]
        );
        assert_eq!(
            rest[3].len(),
            2,
            "a repeated key stays whole in the map: {:?}",
            rest[3]
        );
        assert_eq!(rest[4], [("http.route".to_string(), None)]);

        let merged = merge(&split.attributes, &split.columns).unwrap();
        assert_eq!(entries(&merged), entries(&map));
        assert_eq!(merged.data_type(), map.data_type());
    }

    #[test]
    fn maps_without_dedicated_keys_pass_through() {
        let map = attributes(&[&[("session.id", Some("s"))], &[]]);
        let split = split(&map).unwrap();
        assert_eq!(split.left_in_map, 0);
        assert_eq!(entries(&split.attributes), entries(&map));
        let nulls: Vec<ArrayRef> = (0..DEDICATED_ATTRIBUTES.len())
            .map(|_| arrow::array::new_null_array(&DataType::Null, 2))
            .collect();
        assert_eq!(entries(&merge(&map, &nulls).unwrap()), entries(&map));
        // A slice of a map merges as the slice.
        let sliced = map.slice(1, 1);
        let split = super::split(&sliced).unwrap();
        assert_eq!(
            entries(&merge(&split.attributes, &split.columns).unwrap()),
            [vec![]]
        );
    }

    #[test]
    fn every_dedicated_key_has_its_index() {
        for (i, (key, column)) in DEDICATED_ATTRIBUTES.iter().enumerate() {
            assert_eq!(index_of(key), Some(i));
            assert_eq!(column_of(key), Some(*column));
        }
        assert_eq!(index_of("session.id"), None);
        assert!(
            DEDICATED_ATTRIBUTES.len() <= 32,
            "split keeps a u32 bit per key"
        );
    }
}
