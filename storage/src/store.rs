//! The store: WAL, in-memory recent spans, Parquet files and catalog, behind [`SpanSink`] and
//! [`SegmentSource`].
//!
//! A batch is appended to the WAL and, once fsynced, published to the per-tenant memory buffer
//! (tagged with its WAL segment) before the writer is answered. A flush rotates the WAL, moves
//! the buffered chunks of the closed segments to `flushing` (still queryable), writes one sorted
//! Parquet file per tenant, publishes its catalog entry, swaps chunks for file in one step under
//! the state lock (so a query sees each span exactly once), and then deletes the WAL segments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::catalog::{self, CatalogFile, FileMeta, WalCoverage};
use crate::wal::{self, Wal, WalRecord};
use crate::{Error, Result, SegmentSource, Snapshot, SpanSink, TenantId, TimeRange};

/// How the store is set up.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Holds `wal/` and `node_id`; with no `object_store`, also the data files and catalog.
    pub data_dir: PathBuf,
    /// Where Parquet files and the catalog go; `None` means the local `data_dir`.
    pub object_store: Option<Arc<dyn ObjectStore>>,
    /// Flush when this many bytes of spans are buffered in memory.
    pub flush_bytes: usize,
    /// Flush buffered spans at least this often.
    pub flush_interval: Duration,
    /// Refuse new spans (the client should retry) while this many bytes wait in memory.
    pub max_buffer_bytes: usize,
    /// Delete files whose spans all ended longer ago than this; `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often retention looks for expired files.
    pub retention_interval: Duration,
    /// How long an expired or compacted-away file stays on disk after it left the catalog, so
    /// queries that already planned it can finish reading.
    pub deletion_grace: Duration,
    /// How often compaction looks for small files to merge; `None` turns it off.
    pub compaction_interval: Option<Duration>,
    /// Files with fewer spans than this are small; compaction merges small files of the same
    /// hour into files of about this many spans.
    pub compaction_target_rows: u64,
    /// Small files of one hour it takes before compaction merges them.
    pub compaction_min_files: usize,
}

impl StoreConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            object_store: None,
            flush_bytes: 256 << 20,
            flush_interval: Duration::from_secs(30),
            max_buffer_bytes: 2 << 30,
            retention: None,
            retention_interval: Duration::from_secs(60),
            deletion_grace: Duration::from_secs(300),
            compaction_interval: Some(Duration::from_secs(300)),
            compaction_target_rows: 1_000_000,
            compaction_min_files: 4,
        }
    }
}

/// What one compaction pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactStats {
    /// Files merged away and files written.
    pub files_in: usize,
    pub files_out: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// What one retention pass removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExpireStats {
    pub files: usize,
    pub bytes: u64,
    pub spans: u64,
}

struct Chunk {
    seq: u64,
    batch: RecordBatch,
    bytes: usize,
}

#[derive(Default)]
struct TenantState {
    files: Vec<Arc<CatalogFile>>,
    active: Vec<Chunk>,
    flushing: Vec<Chunk>,
}

#[derive(Default)]
struct State {
    tenants: HashMap<String, TenantState>,
    buffered_bytes: usize,
}

impl State {
    fn publish(&mut self, seq: u64, tenant: String, batch: RecordBatch) {
        let bytes = batch.get_array_memory_size();
        self.buffered_bytes += bytes;
        self.tenants
            .entry(tenant)
            .or_default()
            .active
            .push(Chunk { seq, batch, bytes });
    }
}

/// What one flush did.
#[derive(Debug, Default, Clone)]
pub struct FlushStats {
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub wal_segments_removed: usize,
}

struct Inner {
    config: StoreConfig,
    node_id: String,
    objects: Arc<dyn ObjectStore>,
    local_root: Option<PathBuf>,
    state: Arc<RwLock<State>>,
    wal: Mutex<Option<Arc<Wal>>>,
    wal_dir: PathBuf,
    flush_lock: tokio::sync::Mutex<()>,
    /// One compaction at a time.
    compact_lock: tokio::sync::Mutex<()>,
    flush_wanted: Arc<Notify>,
}

/// The span store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.config.data_dir)
            .field("node_id", &self.inner.node_id)
            .finish()
    }
}

fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node_id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = uuid::Uuid::now_v7().simple().to_string();
            let tmp = data_dir.join("node_id.tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
    }
}

impl Store {
    /// Opens the store: loads the catalog, replays the WAL into memory, starts the WAL writer
    /// and the background flusher. Spans from the WAL are queryable when this returns.
    pub async fn open(config: StoreConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let node_id = node_id(&config.data_dir)?;
        let (objects, local_root): (Arc<dyn ObjectStore>, _) = match &config.object_store {
            Some(store) => (Arc::clone(store), None),
            None => {
                let root = std::fs::canonicalize(&config.data_dir)?;
                (
                    Arc::new(LocalFileSystem::new_with_prefix(&root)?),
                    Some(root),
                )
            }
        };

        let loaded = catalog::load(Arc::clone(&objects)).await?;
        // Files of a newer schema would fail queries and compaction: refuse to start instead
        // (after a downgrade, say), naming one.
        if let Some(newer) = loaded
            .files
            .iter()
            .find(|f| f.meta.schema_version > crate::schema::SCHEMA_VERSION)
        {
            return Err(Error::NewerFormat(format!(
                "{} has span schema version {}, this build reads up to {}: run a newer spanlake",
                newer.meta.path,
                newer.meta.schema_version,
                crate::schema::SCHEMA_VERSION
            )));
        }
        remove_unlisted_files(objects.as_ref(), &node_id, &loaded.known_paths).await?;
        let mut state = State::default();
        for file in loaded.files {
            if let Err(why) = check_file(objects.as_ref(), &file.meta).await {
                quarantine(objects.as_ref(), &file.meta, &why).await;
                continue;
            }
            state
                .tenants
                .entry(file.meta.tenant.clone())
                .or_default()
                .files
                .push(Arc::new(file));
        }

        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let started = Instant::now();
        let segments = wal::replay(&wal_dir)?;
        let mut last_seq = 0;
        let (mut replayed, mut skipped) = (0usize, 0usize);
        for segment in segments {
            last_seq = last_seq.max(segment.seq);
            for (tenant, batch) in segment.records {
                let covered = loaded
                    .coverage
                    .get(&(node_id.clone(), tenant.clone()))
                    .is_some_and(|through| segment.seq <= *through);
                if covered {
                    skipped += batch.num_rows();
                } else {
                    replayed += batch.num_rows();
                    state.publish(segment.seq, tenant, batch);
                }
            }
        }
        tracing::info!(
            spans = replayed,
            already_in_files = skipped,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "wal replayed"
        );

        let state = Arc::new(RwLock::new(state));
        let publish_to = Arc::clone(&state);
        let wal = Wal::start(
            &wal_dir,
            last_seq,
            Box::new(move |seq, records: Vec<WalRecord>| {
                let mut state = publish_to.write();
                for record in records {
                    state.publish(seq, record.tenant, record.batch);
                }
            }),
        )?;
        let store = Store {
            inner: Arc::new(Inner {
                config,
                node_id,
                objects,
                local_root,
                state,
                wal: Mutex::new(Some(Arc::new(wal))),
                wal_dir,
                flush_lock: tokio::sync::Mutex::new(()),
                compact_lock: tokio::sync::Mutex::new(()),
                flush_wanted: Arc::new(Notify::new()),
            }),
        };
        store.spawn_flusher();
        store.spawn_retention();
        store.spawn_compactor();
        for meta in loaded.replaced {
            // Superseded by a compacted file before a crash or a restart: only the leftovers
            // remain to be deleted.
            store.delete_later(meta, Duration::ZERO);
        }
        Ok(store)
    }

    fn spawn_compactor(&self) {
        let Some(every) = self.inner.config.compaction_interval else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.wal.lock().is_none() {
                    return;
                }
                if let Err(e) = (Store { inner }).compact().await {
                    tracing::error!(error = %e, "compaction failed; will retry");
                }
            }
        });
    }

    /// Deletes a file that left the catalog (its entry, then its data) after `grace`.
    fn delete_later(&self, meta: FileMeta, grace: Duration) {
        let objects = Arc::clone(&self.inner.objects);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for location in [
                catalog::entry_path(&meta.tenant, &meta.id),
                ObjectPath::from(meta.path.as_str()),
            ] {
                match objects.delete(&location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(path = %location, error = %e, "could not delete a file that left the catalog");
                    }
                }
            }
        });
    }

    /// Groups of small files worth merging: per tenant and hour of their first span, the small
    /// files (fewer than `compaction_target_rows`) in time order, taken while their sum stays
    /// within twice the target, when at least `compaction_min_files` are small.
    fn compaction_groups(&self) -> Vec<(String, Vec<Arc<CatalogFile>>)> {
        const HOUR_NS: i64 = 3_600_000_000_000;
        let config = &self.inner.config;
        let state = self.inner.state.read();
        let mut groups = Vec::new();
        for (tenant, t) in &state.tenants {
            let mut hours: std::collections::BTreeMap<i64, Vec<Arc<CatalogFile>>> =
                std::collections::BTreeMap::new();
            for f in t
                .files
                .iter()
                .filter(|f| f.meta.rows < config.compaction_target_rows)
            {
                hours
                    .entry(f.meta.min_start_ns.div_euclid(HOUR_NS))
                    .or_default()
                    .push(Arc::clone(f));
            }
            for (_, mut small) in hours {
                if small.len() < config.compaction_min_files.max(2) {
                    continue;
                }
                small.sort_by_key(|f| (f.meta.min_start_ns, f.meta.id.clone()));
                let mut group = Vec::new();
                let mut rows = 0;
                for f in small {
                    if !group.is_empty() && rows + f.meta.rows > 2 * config.compaction_target_rows {
                        break;
                    }
                    rows += f.meta.rows;
                    group.push(f);
                }
                if group.len() >= 2 {
                    groups.push((tenant.clone(), group));
                }
            }
        }
        groups
    }

    /// Merges small files of the same tenant and hour into one sorted file each. The new file
    /// is complete and durable, and its catalog entry (naming the files it `replaces`) is
    /// published, before the old files leave the catalog in the same step that adds it, so a
    /// query sees either the old files or the new one, never both or neither; the old files are
    /// deleted `deletion_grace` later. A crash at any point leaves either the old files (and a
    /// stray new file, removed at the next start) or the new entry, which hides the old ones.
    pub async fn compact(&self) -> Result<CompactStats> {
        let inner = &self.inner;
        let _one = inner.compact_lock.lock().await;
        let mut stats = CompactStats::default();
        for (tenant, inputs) in self.compaction_groups() {
            let started = Instant::now();
            let mut batches = Vec::new();
            for f in &inputs {
                batches.extend(
                    crate::parquet_file::read(Arc::clone(&inner.objects), &f.meta.path).await?,
                );
            }
            let mut encoded = tokio::task::spawn_blocking(move || {
                crate::parquet_file::encode(&batches, crate::parquet_file::Effort::Compaction)
            })
            .await
            .map_err(|e| Error::Internal(format!("parquet encode task: {e}")))??;
            let (path, id) = self.file_path(&tenant, encoded.min_start_ns);
            let size = encoded.bytes.len() as u64;
            let location = ObjectPath::from(path.as_str());
            inner
                .objects
                .put_opts(
                    &location,
                    PutPayload::from(std::mem::take(&mut encoded.bytes)),
                    PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    },
                )
                .await?;
            self.sync_local(&path)?;
            // The highest WAL coverage of this node among the inputs stays recorded.
            let through = inputs
                .iter()
                .filter_map(|f| f.meta.wal.as_ref())
                .filter(|w| w.node == inner.node_id)
                .map(|w| w.through_seq)
                .max();
            let replaces: Vec<String> = inputs.iter().map(|f| f.meta.id.clone()).collect();
            let _flushes = inner.flush_lock.lock().await;
            // Retention may have removed an input meanwhile: then leave everything as it is.
            let still_live = {
                let state = inner.state.read();
                state.tenants.get(&tenant).is_some_and(|t| {
                    replaces
                        .iter()
                        .all(|id| t.files.iter().any(|f| &f.meta.id == id))
                })
            };
            if !still_live {
                let _ = inner.objects.delete(&location).await;
                continue;
            }
            let file = match self
                .publish_file(
                    &tenant,
                    id,
                    path.clone(),
                    size,
                    encoded,
                    through,
                    replaces.clone(),
                )
                .await
            {
                Ok(file) => Arc::new(file),
                Err(e) => {
                    let _ = inner.objects.delete(&location).await;
                    return Err(e);
                }
            };
            {
                let mut state = inner.state.write();
                let t = state.tenants.entry(tenant.clone()).or_default();
                t.files.retain(|f| !replaces.contains(&f.meta.id));
                t.files.push(Arc::clone(&file));
            }
            drop(_flushes);
            stats.files_in += inputs.len();
            stats.files_out += 1;
            stats.rows += file.meta.rows;
            stats.bytes_in += inputs.iter().map(|f| f.meta.size).sum::<u64>();
            stats.bytes_out += file.meta.size;
            for f in &inputs {
                self.delete_later(f.meta.clone(), inner.config.deletion_grace);
            }
            metrics::histogram!("spanlake_compaction_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("spanlake_compacted_files_total").increment(inputs.len() as u64);
        }
        if stats.files_out > 0 {
            tracing::info!(
                files_in = stats.files_in,
                files_out = stats.files_out,
                spans = stats.rows,
                bytes_in = stats.bytes_in,
                bytes_out = stats.bytes_out,
                "compacted"
            );
        }
        Ok(stats)
    }

    /// With a retention set, expires old files every `retention_interval`.
    fn spawn_retention(&self) {
        let Some(retention) = self.inner.config.retention else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.config.retention_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.wal.lock().is_none() {
                    return;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64);
                let cutoff = now.saturating_sub(retention.as_nanos().min(i64::MAX as u128) as i64);
                if let Err(e) = (Store { inner }).expire(cutoff).await {
                    tracing::error!(error = %e, "retention failed; will retry");
                }
            }
        });
    }

    /// Removes from every tenant the files whose spans all ended before `cutoff_ns`: their
    /// catalog entries go first (queries stop seeing them), the data files after
    /// `deletion_grace`. A crash in between leaves a data file no entry names; the next start
    /// removes it with the other stray files of this node.
    pub async fn expire(&self, cutoff_ns: i64) -> Result<ExpireStats> {
        let inner = &self.inner;
        let _guard = inner.flush_lock.lock().await;
        let expired: Vec<(String, Arc<CatalogFile>)> = {
            let mut state = inner.state.write();
            let mut expired = Vec::new();
            for (tenant, t) in state.tenants.iter_mut() {
                let (old, keep): (Vec<_>, Vec<_>) = t
                    .files
                    .drain(..)
                    .partition(|f| f.meta.max_end_ns < cutoff_ns);
                t.files = keep;
                expired.extend(old.into_iter().map(|f| (tenant.clone(), f)));
            }
            expired
        };
        let mut stats = ExpireStats::default();
        for (tenant, file) in expired {
            let meta = &file.meta;
            for id in std::iter::once(&meta.id).chain(&meta.replaces) {
                match inner
                    .objects
                    .delete(&catalog::entry_path(&tenant, id))
                    .await
                {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            stats.files += 1;
            stats.bytes += meta.size;
            stats.spans += meta.rows;
            self.delete_later(meta.clone(), inner.config.deletion_grace);
        }
        if stats.files > 0 {
            metrics::counter!("spanlake_retention_deleted_files_total")
                .increment(stats.files as u64);
            metrics::counter!("spanlake_retention_deleted_bytes_total").increment(stats.bytes);
            tracing::info!(
                files = stats.files,
                bytes = stats.bytes,
                spans = stats.spans,
                "expired files past the retention"
            );
        }
        Ok(stats)
    }

    fn spawn_flusher(&self) {
        // Holds only a weak reference between flushes, so dropping the store ends the task.
        let weak = Arc::downgrade(&self.inner);
        let wanted = Arc::clone(&self.inner.flush_wanted);
        let interval = self.inner.config.flush_interval;
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                let timeout = interval.saturating_sub(last.elapsed());
                let _ = tokio::time::timeout(timeout, wanted.notified()).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.wal.lock().is_none() {
                    return;
                }
                last = Instant::now();
                if let Err(e) = (Store { inner }).flush().await {
                    tracing::error!(error = %e, "flush failed; spans stay in the wal and memory");
                }
            }
        });
    }

    fn wal(&self) -> Result<Arc<Wal>> {
        self.inner.wal.lock().clone().ok_or(Error::Closed)
    }

    /// The object store holding data files and catalog.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner.objects)
    }

    /// This node's id (one per data directory).
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Parquet files and their bytes, over all tenants.
    pub fn disk_usage(&self) -> (usize, u64) {
        let state = self.inner.state.read();
        state
            .tenants
            .values()
            .flat_map(|t| &t.files)
            .fold((0, 0), |(n, bytes), f| (n + 1, bytes + f.meta.size))
    }

    /// Bytes of spans waiting in memory.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.state.read().buffered_bytes
    }

    /// Writes everything buffered to Parquet and drops the WAL segments it covered.
    pub async fn flush(&self) -> Result<FlushStats> {
        let inner = &self.inner;
        let _guard = inner.flush_lock.lock().await;
        let started = std::time::Instant::now();
        if inner
            .state
            .read()
            .tenants
            .values()
            .all(|t| t.active.is_empty())
        {
            return Ok(FlushStats::default());
        }
        let sealed = self.wal()?.rotate().await?;
        let work: Vec<(String, Vec<RecordBatch>)> = {
            let mut state = inner.state.write();
            state
                .tenants
                .iter_mut()
                .filter_map(|(tenant, t)| {
                    let (take, keep): (Vec<_>, Vec<_>) =
                        t.active.drain(..).partition(|c| c.seq <= sealed);
                    t.active = keep;
                    t.flushing.extend(take);
                    let batches: Vec<_> = t.flushing.iter().map(|c| c.batch.clone()).collect();
                    (!batches.is_empty()).then(|| (tenant.clone(), batches))
                })
                .collect()
        };

        let mut stats = FlushStats::default();
        let mut all_ok = true;
        for (tenant, batches) in work {
            match self.write_file(&tenant, batches, Some(sealed)).await {
                Ok(file) => {
                    stats.files += 1;
                    stats.rows += file.meta.rows;
                    stats.bytes += file.meta.size;
                    let mut state = inner.state.write();
                    let freed: usize;
                    {
                        let t = state.tenants.entry(tenant).or_default();
                        freed = t.flushing.iter().map(|c| c.bytes).sum();
                        t.flushing.clear();
                        t.files.push(Arc::new(file));
                    }
                    state.buffered_bytes -= freed;
                }
                Err(e) => {
                    all_ok = false;
                    metrics::counter!("spanlake_flush_failures_total").increment(1);
                    tracing::error!(tenant = %tenant, error = %e, "writing parquet file failed");
                    let mut state = inner.state.write();
                    if let Some(t) = state.tenants.get_mut(&tenant) {
                        let mut back = std::mem::take(&mut t.flushing);
                        back.append(&mut t.active);
                        t.active = back;
                    }
                }
            }
        }
        if all_ok {
            stats.wal_segments_removed = wal::remove_through(&inner.wal_dir, sealed)?;
        }
        if stats.files > 0 {
            metrics::histogram!("spanlake_flush_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("spanlake_flushed_spans_total").increment(stats.rows);
            metrics::counter!("spanlake_flushed_bytes_total").increment(stats.bytes);
            tracing::info!(
                files = stats.files,
                spans = stats.rows,
                bytes = stats.bytes,
                "flushed"
            );
        }
        if all_ok {
            Ok(stats)
        } else {
            Err(Error::FlushFailed)
        }
    }

    async fn write_file(
        &self,
        tenant: &str,
        batches: Vec<RecordBatch>,
        sealed: Option<u64>,
    ) -> Result<CatalogFile> {
        // A flush (`sealed`) is on the ingest path; an import writes files meant to stay.
        let effort = match sealed {
            Some(_) => crate::parquet_file::Effort::Flush,
            None => crate::parquet_file::Effort::Compaction,
        };
        let mut encoded =
            tokio::task::spawn_blocking(move || crate::parquet_file::encode(&batches, effort))
                .await
                .map_err(|e| Error::Internal(format!("parquet encode task: {e}")))??;
        let (path, id) = self.file_path(tenant, encoded.min_start_ns);
        let size = encoded.bytes.len() as u64;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let location = ObjectPath::from(path.as_str());
        self.inner
            .objects
            .put_opts(
                &location,
                PutPayload::from(std::mem::take(&mut encoded.bytes)),
                opts,
            )
            .await?;
        let published = self
            .publish_file(tenant, id, path.clone(), size, encoded, sealed, Vec::new())
            .await;
        if published.is_err() {
            // Without its catalog entry the file is invisible but would still be read by
            // tools that list the directory; its spans stay in the WAL and memory.
            if let Err(e) = self.inner.objects.delete(&location).await {
                tracing::warn!(path, error = %e, "could not remove the file of a failed flush");
            }
        }
        published
    }

    /// A new data file's path and id. The node id in the name tells whose unfinished flush or
    /// compaction a file without a catalog entry is.
    fn file_path(&self, tenant: &str, min_start_ns: i64) -> (String, String) {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let start = chrono_parts(min_start_ns);
        let path = format!(
            "spans/tenant={tenant}/date={}/hour={:02}/{}-{id}.parquet",
            start.0, start.1, self.inner.node_id
        );
        (path, id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn publish_file(
        &self,
        tenant: &str,
        id: String,
        path: String,
        size: u64,
        encoded: crate::parquet_file::EncodedFile,
        sealed: Option<u64>,
        replaces: Vec<String>,
    ) -> Result<CatalogFile> {
        self.sync_local(&path)?;
        let meta = FileMeta {
            id,
            tenant: tenant.to_string(),
            path,
            size,
            rows: encoded.rows,
            schema_version: crate::schema::SCHEMA_VERSION,
            min_start_ns: encoded.min_start_ns,
            max_start_ns: encoded.max_start_ns,
            max_end_ns: encoded.max_end_ns,
            min_trace_id: encoded.min_trace_id,
            max_trace_id: encoded.max_trace_id,
            created_unix_ms: unix_ms(),
            wal: sealed.map(|through_seq| WalCoverage {
                node: self.inner.node_id.clone(),
                through_seq,
            }),
            replaces,
            trace_filter: catalog::encode_filter(&encoded.trace_filter)?,
        };
        catalog::publish(self.inner.objects.as_ref(), &meta).await?;
        self.sync_local(catalog::entry_path(tenant, &meta.id).as_ref())?;
        CatalogFile::new(meta)
    }

    /// The local object store renames complete files into place but does not fsync; the WAL is
    /// deleted after a flush, so make the file and its directory durable first.
    fn sync_local(&self, relative: &str) -> Result<()> {
        let Some(root) = &self.inner.local_root else {
            return Ok(());
        };
        let path = root.join(relative);
        std::fs::File::open(&path)?.sync_all()?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Writes `batches` straight to one Parquet file, bypassing the WAL: bulk loads and data
    /// generators, where the caller can redo the whole load after a crash.
    pub async fn import(&self, tenant: &TenantId, batches: Vec<RecordBatch>) -> Result<FileMeta> {
        let file = self.write_file(tenant.as_str(), batches, None).await?;
        let meta = file.meta.clone();
        self.inner
            .state
            .write()
            .tenants
            .entry(tenant.as_str().to_string())
            .or_default()
            .files
            .push(Arc::new(file));
        Ok(meta)
    }

    /// Flushes everything and stops the WAL writer. Appends after this fail with `Closed`.
    pub async fn shutdown(&self) -> Result<FlushStats> {
        let stats = self.flush().await;
        let wal = self.inner.wal.lock().take();
        self.inner.flush_wanted.notify_one();
        if let Some(wal) = wal {
            // The last Arc closes the writer thread on drop, after queued records.
            tokio::task::spawn_blocking(move || drop(wal))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        stats
    }
}

/// Whether a data file is whole: present, of the size its entry records, ending in Parquet's
/// magic bytes.
async fn check_file(objects: &dyn ObjectStore, meta: &FileMeta) -> std::result::Result<(), String> {
    let location = ObjectPath::from(meta.path.as_str());
    let head = objects
        .head(&location)
        .await
        .map_err(|e| format!("cannot be read: {e}"))?;
    if head.size != meta.size {
        return Err(format!(
            "is {} bytes where its catalog entry says {}",
            head.size, meta.size
        ));
    }
    if meta.size < 8 {
        return Err("is too short to be Parquet".into());
    }
    let tail = objects
        .get_range(&location, meta.size - 4..meta.size)
        .await
        .map_err(|e| format!("cannot be read: {e}"))?;
    if &tail[..] != b"PAR1" {
        return Err("does not end like a Parquet file".into());
    }
    Ok(())
}

/// Takes a damaged file out of service without stopping the server: its data file moves to
/// `quarantine/<path>`, its catalog entry to `quarantine/<entry path>`, and the problem is
/// logged and counted. Its spans are gone from queries until someone restores the file.
async fn quarantine(objects: &dyn ObjectStore, meta: &FileMeta, why: &str) {
    tracing::error!(
        path = meta.path,
        tenant = meta.tenant,
        spans = meta.rows,
        "data file {why}; moved to quarantine/ and left out of queries"
    );
    metrics::counter!("spanlake_quarantined_files_total").increment(1);
    let data = ObjectPath::from(meta.path.as_str());
    let entry = catalog::entry_path(&meta.tenant, &meta.id);
    for from in [data, entry] {
        let to = ObjectPath::from(format!("quarantine/{from}"));
        match objects.rename(&from, &to).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(path = %from, error = %e, "could not move to quarantine"),
        }
    }
}

/// Deletes this node's data files that no catalog entry names: a crash between writing a file
/// and publishing its entry leaves one behind, and its spans are still in the WAL. Only files
/// named with this node's id are touched, and no flush of this node runs yet, so none of them
/// is a file about to be published.
async fn remove_unlisted_files(
    objects: &dyn ObjectStore,
    node_id: &str,
    known: &std::collections::HashSet<String>,
) -> Result<()> {
    use futures::TryStreamExt;
    let prefix = format!("{node_id}-");
    let files: Vec<_> = objects
        .list(Some(&ObjectPath::from("spans")))
        .try_collect()
        .await?;
    for file in files {
        let path = file.location.to_string();
        let mine = file
            .location
            .filename()
            .is_some_and(|name| name.starts_with(&prefix));
        if mine && !known.contains(&path) {
            tracing::warn!(
                path,
                "removing a data file no catalog entry names (an unfinished flush, whose spans \
                 are replayed from the wal, or an expired file)"
            );
            objects.delete(&file.location).await?;
        }
    }
    Ok(())
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// (`YYYY-MM-DD`, hour) of a UNIX time in nanoseconds, UTC.
fn chrono_parts(ns: i64) -> (String, u32) {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), hour)
}

#[async_trait]
impl SpanSink for Store {
    async fn append(&self, tenant: &TenantId, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.admit()?;
        let tenant_name = tenant.as_str().to_string();
        let record = tokio::task::spawn_blocking(move || wal::encode_record(&tenant_name, batch))
            .await
            .map_err(|e| Error::Internal(format!("wal encode task: {e}")))??;
        self.wal()?.append(record).await?;
        if self.buffered_bytes() >= self.inner.config.flush_bytes {
            self.inner.flush_wanted.notify_one();
        }
        Ok(())
    }

    fn admit(&self) -> Result<()> {
        if self.buffered_bytes() >= self.inner.config.max_buffer_bytes {
            self.inner.flush_wanted.notify_one();
            return Err(Error::Overloaded {
                retry_after: Duration::from_secs(5),
            });
        }
        Ok(())
    }
}

impl SegmentSource for Store {
    fn snapshot(&self, tenant: &TenantId, range: &TimeRange, trace_ids: &[String]) -> Snapshot {
        let state = self.inner.state.read();
        let Some(t) = state.tenants.get(tenant.as_str()) else {
            return Snapshot::default();
        };
        let files = t
            .files
            .iter()
            .filter(|f| f.overlaps(range.start_ns, range.end_ns))
            .filter(|f| trace_ids.is_empty() || trace_ids.iter().any(|id| f.may_contain_trace(id)))
            .cloned()
            .collect();
        let batches = t
            .active
            .iter()
            .chain(&t.flushing)
            .map(|c| c.batch.clone())
            .collect();
        Snapshot { files, batches }
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Store::object_store(self)
    }

    fn tenants(&self) -> Vec<String> {
        let mut names: Vec<_> = self.inner.state.read().tenants.keys().cloned().collect();
        names.sort();
        names
    }

    fn retention(&self) -> Option<Duration> {
        self.inner.config.retention
    }
}

#[cfg(test)]
mod tests;
