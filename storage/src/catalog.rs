//! The catalog: which Parquet files exist, per tenant, with what time range and trace ids.
//!
//! It is kept in the object store as one immutable JSON entry per data file,
//! `catalog/tenant={tenant}/{file_id}.json`, written with a create-only put once the data file
//! is complete. Writers never rewrite an entry, so several writers (and compaction, which adds an
//! entry that `replaces` others) need no lock and no read-modify-write: the set of live files is
//! every entry not named in another entry's `replaces`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::bloom_filter::Sbbf;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which WAL records a file covers, so replay after a crash between writing the file and
/// deleting the WAL segments does not load them twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WalCoverage {
    /// The node whose WAL this is (one per data directory).
    pub node: String,
    /// Every record of this tenant in segments up to and including this one is in the file.
    pub through_seq: u64,
}

/// One data file, as the catalog records it (format version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileMeta {
    pub id: String,
    pub tenant: String,
    /// Location in the object store.
    pub path: String,
    pub size: u64,
    pub rows: u64,
    pub schema_version: u32,
    pub min_start_ns: i64,
    pub max_start_ns: i64,
    pub max_end_ns: i64,
    pub min_trace_id: String,
    pub max_trace_id: String,
    pub created_unix_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalCoverage>,
    /// Ids of the files this one supersedes (compaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// Split-block bloom filter over the file's distinct trace ids, base64. Empty once a
    /// [`CatalogFile`] holds the entry: the decoded filter is what lookups check.
    pub trace_filter: String,
}

/// On-disk form of a catalog entry; the tag makes the format version explicit.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
enum Entry {
    #[serde(rename = "1")]
    V1(FileMeta),
}

/// A catalog entry loaded in memory, with its trace filter decoded.
#[derive(Debug)]
pub struct CatalogFile {
    pub meta: FileMeta,
    filter: Sbbf,
}

impl CatalogFile {
    pub fn new(mut meta: FileMeta) -> Result<Self> {
        // The text is only the catalog's on-disk form; kept beside the decoded filter it would
        // double the catalog's memory (3.5 bytes per trace, BENCHMARKS.md).
        let text = std::mem::take(&mut meta.trace_filter);
        let bits = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|e| Error::Corrupt(format!("catalog entry {}: trace filter: {e}", meta.id)))?;
        Ok(Self {
            filter: Sbbf::new(&bits),
            meta,
        })
    }

    /// Whether the file may hold spans of `trace_id` (lowercase hex). False positives are
    /// possible, false negatives are not.
    pub fn may_contain_trace(&self, trace_id: &str) -> bool {
        trace_id >= self.meta.min_trace_id.as_str()
            && trace_id <= self.meta.max_trace_id.as_str()
            && self.filter.check(trace_id)
    }

    /// Whether the file may hold spans starting in `[start_ns, end_ns)`.
    pub fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.meta.min_start_ns < end_ns && self.meta.max_start_ns >= start_ns
    }
}

/// Encodes a trace filter for [`FileMeta::trace_filter`].
pub fn encode_filter(filter: &Sbbf) -> Result<String> {
    let mut bits = Vec::new();
    filter.write_bitset(&mut bits)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bits))
}

pub(crate) fn entry_path(tenant: &str, id: &str) -> Path {
    Path::from(format!("catalog/tenant={tenant}/{id}.json"))
}

/// Writes the entry for a complete data file. Create-only: an id is never reused.
pub async fn publish(store: &dyn ObjectStore, meta: &FileMeta) -> Result<()> {
    let body = serde_json::to_vec(&Entry::V1(meta.clone()))
        .map_err(|e| Error::Internal(format!("catalog entry: {e}")))?;
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    store
        .put_opts(
            &entry_path(&meta.tenant, &meta.id),
            PutPayload::from(body),
            opts,
        )
        .await?;
    Ok(())
}

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Live files: those no other entry replaces.
    pub files: Vec<CatalogFile>,
    /// Highest WAL segment covered, per (node, tenant), over every entry ever written.
    pub coverage: HashMap<(String, String), u64>,
    /// Paths of every data file any entry names, live or replaced.
    pub known_paths: std::collections::HashSet<String>,
    /// Entries another entry replaces (compacted away; left over if a crash or restart came
    /// before their deletion).
    pub replaced: Vec<FileMeta>,
}

/// Reads every catalog entry. An unreadable entry is reported and skipped, never fatal.
pub async fn load(store: Arc<dyn ObjectStore>) -> Result<Loaded> {
    let metas: Vec<_> = store
        .list(Some(&Path::from("catalog")))
        .try_collect()
        .await?;
    let entries: Vec<Option<FileMeta>> = futures::stream::iter(metas)
        .map(|object| {
            let store = Arc::clone(&store);
            async move {
                let location = object.location;
                let parsed = async {
                    let bytes = store.get(&location).await?.bytes().await?;
                    match serde_json::from_slice::<Entry>(&bytes) {
                        Ok(Entry::V1(meta)) => Ok(meta),
                        Err(e) => Err(Error::Corrupt(format!("{location}: {e}"))),
                    }
                }
                .await;
                match parsed {
                    Ok(meta) => Some(meta),
                    Err(e) => {
                        tracing::warn!(error = %e, "skipping unreadable catalog entry");
                        None
                    }
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let entries: Vec<FileMeta> = entries.into_iter().flatten().collect();
    let replaced: std::collections::HashSet<&str> = entries
        .iter()
        .flat_map(|e| e.replaces.iter().map(String::as_str))
        .collect();
    let mut coverage = HashMap::new();
    for entry in &entries {
        if let Some(wal) = &entry.wal {
            let through = coverage
                .entry((wal.node.clone(), entry.tenant.clone()))
                .or_insert(0);
            *through = (*through).max(wal.through_seq);
        }
    }
    let known_paths = entries.iter().map(|e| e.path.clone()).collect();
    let files = entries
        .iter()
        .filter(|e| !replaced.contains(e.id.as_str()))
        .cloned()
        .map(CatalogFile::new)
        .collect::<Result<_>>()?;
    let superseded = entries
        .iter()
        .filter(|e| replaced.contains(e.id.as_str()))
        .cloned()
        .collect();
    Ok(Loaded {
        files,
        coverage,
        known_paths,
        replaced: superseded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_entry_answers_from_the_decoded_filter_alone() {
        let ids = [
            "0af7651916cd43dd8448eb211c80319c",
            "4bf92f3577b34da6a3ce929d0e0e4736",
        ];
        let mut filter = Sbbf::new_with_ndv_fpp(ids.len() as u64, 0.001).unwrap();
        for id in ids {
            filter.insert(id);
        }
        let meta = FileMeta {
            id: "f1".into(),
            tenant: "default".into(),
            path: "data/f1.parquet".into(),
            size: 1,
            rows: 2,
            schema_version: crate::schema::SCHEMA_VERSION,
            min_start_ns: 0,
            max_start_ns: 0,
            max_end_ns: 0,
            min_trace_id: ids[0].into(),
            max_trace_id: ids[1].into(),
            created_unix_ms: 0,
            wal: None,
            replaces: Vec::new(),
            trace_filter: encode_filter(&filter).unwrap(),
        };
        let file = CatalogFile::new(meta).unwrap();
        assert!(
            file.meta.trace_filter.is_empty(),
            "base64 text kept in memory"
        );
        for id in ids {
            assert!(file.may_contain_trace(id), "{id}");
        }
        // In range, not inserted: turned away by the filter (0.1% chance of a false positive
        // for this fixed id; it is not one).
        assert!(!file.may_contain_trace("1000000000000000000000000000abcd"));
    }
}
