use super::*;
use crate::batch::{AttrValue, SpanBatchBuilder, SpanFields, SpanKind};

/// `n` spans of trace `trace` (a byte repeated), span ids from `first`.
fn batch(trace: u8, first: u64, n: u64) -> RecordBatch {
    let mut b = SpanBatchBuilder::new();
    for id in first..first + n {
        b.begin_span(&SpanFields {
            trace_id: &[trace; 16],
            span_id: &(id + 1).to_be_bytes(),
            service_name: "svc",
            name: "op",
            kind: SpanKind::Server,
            start_unix_nano: 1_700_000_000_000_000_000 + id as i64,
            end_unix_nano: 1_700_000_000_000_000_100 + id as i64,
            ..SpanFields::default()
        });
        b.attributes().push("n", &AttrValue::Int(id as i64));
        b.end_span();
    }
    b.finish().unwrap()
}

fn config(dir: &Path) -> StoreConfig {
    let mut config = StoreConfig::new(dir);
    // Tests flush by hand.
    config.flush_interval = Duration::from_secs(3600);
    config
}

fn rows(snapshot: &Snapshot) -> (usize, u64) {
    (
        snapshot.batches.iter().map(|b| b.num_rows()).sum(),
        snapshot.files.iter().map(|f| f.meta.rows).sum(),
    )
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

#[tokio::test]
async fn appended_spans_are_visible_then_flushed_then_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.append(&tenant(), batch(1, 0, 10)).await.unwrap();
    store.append(&tenant(), batch(2, 100, 5)).await.unwrap();
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (15, 0)
    );

    let stats = store.flush().await.unwrap();
    assert_eq!((stats.files, stats.rows), (1, 15));
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (0, 15)
    );
    store.append(&tenant(), batch(3, 200, 7)).await.unwrap();
    // Dropped without shutdown: the last append is only in the WAL, as after a crash.
    drop(store);

    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (7, 15)
    );
    assert_eq!(store.tenants(), vec!["single-tenant".to_string()]);
    let other = TenantId::new("other").unwrap();
    assert_eq!(rows(&store.snapshot(&other, &TimeRange::ALL, &[])), (0, 0));
    let stats = store.shutdown().await.unwrap();
    assert_eq!(stats.rows, 7);
    assert!(matches!(
        store.append(&tenant(), batch(4, 300, 1)).await,
        Err(Error::Closed)
    ));
}

#[tokio::test]
async fn a_crash_between_file_and_wal_deletion_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.append(&tenant(), batch(1, 0, 10)).await.unwrap();
    // Keep the segments the flush is about to delete, and put them back afterwards: the state
    // a crash between publishing the file and deleting the WAL leaves behind.
    let wal_dir = dir.path().join("wal");
    let saved: Vec<_> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.clone(), std::fs::read(&p).unwrap())
        })
        .collect();
    store.flush().await.unwrap();
    drop(store);
    for (path, bytes) in saved {
        std::fs::write(path, bytes).unwrap();
    }
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (0, 10)
    );
}

#[tokio::test]
async fn a_file_left_without_catalog_entry_is_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.append(&tenant(), batch(1, 0, 10)).await.unwrap();
    store.flush().await.unwrap();
    let node = store.node_id().to_string();
    drop(store);
    // A crash after writing a file but before its catalog entry leaves a stray file behind.
    let stray = dir
        .path()
        .join(format!("spans/tenant=single-tenant/{node}-stray.parquet"));
    std::fs::write(&stray, b"half a file").unwrap();
    let foreign = dir
        .path()
        .join("spans/tenant=single-tenant/othernode-x.parquet");
    std::fs::write(&foreign, b"another writer's").unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    assert!(!stray.exists());
    assert!(foreign.exists(), "files of other nodes are theirs to clean");
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (0, 10)
    );
}

#[tokio::test]
async fn trace_id_and_time_range_choose_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    for trace in 1..=8u8 {
        store
            .append(&tenant(), batch(trace, u64::from(trace) * 1000, 20))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let all = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!(all.files.len(), 8);
    let wanted = const_hex::encode([5u8; 16]);
    let one = store.snapshot(&tenant(), &TimeRange::ALL, std::slice::from_ref(&wanted));
    assert_eq!(one.files.len(), 1);
    assert!(one.files[0].may_contain_trace(&wanted));
    let absent = const_hex::encode([9u8; 16]);
    assert!(
        store
            .snapshot(&tenant(), &TimeRange::ALL, &[absent])
            .files
            .is_empty()
    );
    // Trace n's spans start at 1_700_000_000_000_000_000 + n * 1000 + (0..20).
    let base = 1_700_000_000_000_000_000i64;
    let range = TimeRange {
        start_ns: base + 3000,
        end_ns: base + 5000,
    };
    assert_eq!(store.snapshot(&tenant(), &range, &[]).files.len(), 2);

    // Files are plain sorted Parquet with the schema version in their metadata.
    let path = dir.path().join(&one.files[0].meta.path);
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    let meta = reader.metadata().file_metadata();
    let version = meta
        .key_value_metadata()
        .unwrap()
        .iter()
        .find(|kv| kv.key == crate::schema::SCHEMA_VERSION_KEY)
        .and_then(|kv| kv.value.clone());
    assert_eq!(version, Some(crate::schema::SCHEMA_VERSION.to_string()));
    assert_eq!(meta.num_rows(), 20);
}

#[tokio::test]
async fn over_the_buffer_limit_appends_are_refused_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.max_buffer_bytes = 1;
    let store = Store::open(cfg).await.unwrap();
    store.append(&tenant(), batch(1, 0, 3)).await.unwrap();
    let refused = store.append(&tenant(), batch(1, 10, 3)).await;
    assert!(
        matches!(refused, Err(Error::Overloaded { .. })),
        "{refused:?}"
    );
    assert_eq!(
        rows(&store.snapshot(&tenant(), &TimeRange::ALL, &[])),
        (3, 0)
    );
}

#[test]
fn civil_dates() {
    assert_eq!(chrono_parts(0), ("1970-01-01".to_string(), 0));
    assert_eq!(
        chrono_parts(1_700_000_000_000_000_000),
        ("2023-11-14".to_string(), 22)
    );
    assert_eq!(
        chrono_parts(951_782_400_000_000_000 + 3_600_000_000_000),
        ("2000-02-29".to_string(), 1)
    );
}

fn parquet_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test]
async fn compaction_merges_small_files_into_one_sorted_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.compaction_interval = None;
    cfg.compaction_min_files = 3;
    cfg.deletion_grace = Duration::ZERO;
    let store = Store::open(cfg.clone()).await.unwrap();
    // Four flushes: four small files of the same hour; the same trace spans them all.
    for i in 0..4 {
        store.append(&tenant(), batch(7, i * 10, 10)).await.unwrap();
        store
            .append(&tenant(), batch(i as u8, 1000 + i * 10, 5))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    let before = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!((before.files.len(), rows(&before)), (4, (0, 60)));

    let stats = store.compact().await.unwrap();
    assert_eq!((stats.files_in, stats.files_out, stats.rows), (4, 1, 60));
    let after = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!((after.files.len(), rows(&after)), (1, (0, 60)));
    let merged = &after.files[0].meta;
    assert_eq!(merged.replaces.len(), 4);
    assert!(after.files[0].may_contain_trace(&"07".repeat(16)));
    // The file is sorted by trace id: trace 7's forty spans are contiguous.
    let batches = crate::parquet_file::read(store.object_store(), &merged.path)
        .await
        .unwrap();
    let ids: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let c = arrow::array::AsArray::as_string::<i32>(b.column(0));
            c.iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    // Old files leave the disk; nothing is left to compact.
    assert!(
        wait_for(|| parquet_files(dir.path()) == 1).await,
        "old files deleted"
    );
    assert_eq!(store.compact().await.unwrap(), CompactStats::default());
    store.shutdown().await.unwrap();
    drop(store);

    // After a restart the merged file alone is live, with every span.
    let store = Store::open(cfg).await.unwrap();
    let reopened = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!((reopened.files.len(), rows(&reopened)), (1, (0, 60)));
}

#[tokio::test]
async fn entries_left_over_from_a_compaction_are_hidden_and_cleaned_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.compaction_interval = None;
    cfg.compaction_min_files = 2;
    // Old files are not deleted before the "crash".
    cfg.deletion_grace = Duration::from_secs(3600);
    let store = Store::open(cfg.clone()).await.unwrap();
    for i in 0..3 {
        store.append(&tenant(), batch(1, i * 10, 10)).await.unwrap();
        store.flush().await.unwrap();
    }
    store.compact().await.unwrap();
    assert_eq!(
        parquet_files(dir.path()),
        4,
        "the old files wait for their grace"
    );
    store.shutdown().await.unwrap();
    drop(store);

    // The replaced entries are still there: the new one hides them, and start deletes them.
    cfg.deletion_grace = Duration::ZERO;
    let store = Store::open(cfg).await.unwrap();
    let snapshot = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!((snapshot.files.len(), rows(&snapshot)), (1, (0, 30)));
    assert!(wait_for(|| parquet_files(dir.path()) == 1).await);
}

async fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn a_damaged_file_is_quarantined_and_the_rest_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.append(&tenant(), batch(1, 0, 10)).await.unwrap();
    store.flush().await.unwrap();
    store.append(&tenant(), batch(2, 100, 7)).await.unwrap();
    store.flush().await.unwrap();
    let files = store.snapshot(&tenant(), &TimeRange::ALL, &[]).files;
    let damaged = files[0].meta.clone();
    store.shutdown().await.unwrap();
    drop(store);

    // Half of one file is lost (a bad copy, a disk error).
    let path = dir.path().join(&damaged.path);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(damaged.size / 2).unwrap();
    drop(f);

    let store = Store::open(config(dir.path())).await.unwrap();
    let snapshot = store.snapshot(&tenant(), &TimeRange::ALL, &[]);
    assert_eq!(snapshot.files.len(), 1);
    assert_ne!(snapshot.files[0].meta.id, damaged.id);
    assert!(dir.path().join("quarantine").join(&damaged.path).exists());
    assert!(!path.exists());
    store.shutdown().await.unwrap();
    drop(store);
    // It stays out, without complaint, at the next start.
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(
        store.snapshot(&tenant(), &TimeRange::ALL, &[]).files.len(),
        1
    );
}

#[tokio::test]
async fn files_of_a_newer_schema_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    store.append(&tenant(), batch(1, 0, 10)).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    // As a later version would have written it (a downgrade).
    let catalog = dir.path().join("catalog/tenant=single-tenant");
    let entry = std::fs::read_dir(&catalog)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&entry).unwrap()).unwrap();
    json["schema_version"] = (crate::schema::SCHEMA_VERSION + 1).into();
    std::fs::write(&entry, serde_json::to_vec(&json).unwrap()).unwrap();
    match Store::open(config(dir.path())).await {
        Err(Error::NewerFormat(why)) => assert!(
            why.contains(&format!(
                "schema version {}",
                crate::schema::SCHEMA_VERSION + 1
            )),
            "{why}"
        ),
        other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
    }
}
