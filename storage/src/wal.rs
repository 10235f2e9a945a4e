//! The write-ahead log: where an export becomes durable before it is acknowledged.
//!
//! One writer thread owns the open segment file. Callers encode their record on their own thread
//! ([`encode_record`]), hand the bytes over, and wait; the thread writes every record that is
//! waiting, calls `fdatasync` once for all of them (group commit), publishes them to the
//! in-memory buffer through the `on_durable` callback, and only then answers the callers. Because
//! publishing happens on the writer thread between commits, the memory buffer and the segments
//! agree exactly: every buffered chunk carries the sequence number of the segment that holds it.
//!
//! Segment files are `wal/{seq:020}.wal`: an 8-byte magic, then records framed as
//! `[u32 length][u32 crc32 of payload][payload]` (little endian). A payload is a format byte, the
//! tenant id, and one Arrow IPC stream of the span batch. Replay stops at the first record that is
//! short or fails its checksum (a torn tail after a crash) and truncates the file there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tokio::sync::oneshot;

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"SLWAL\x00\x01\n";
const FORMAT_ARROW_IPC: u8 = 1;
const HEADER_LEN: usize = 8;
/// A record larger than this is treated as corruption on replay.
const MAX_RECORD_LEN: u32 = 1 << 30;

/// One framed record, ready to append.
#[derive(Debug)]
pub struct WalRecord {
    pub(crate) tenant: String,
    pub(crate) batch: RecordBatch,
    framed: Vec<u8>,
}

impl WalRecord {
    /// Bytes the record takes in the log.
    pub fn len(&self) -> usize {
        self.framed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.framed.is_empty()
    }
}

/// Encodes `batch` of `tenant` as a framed WAL record. CPU work: call it off the I/O threads.
pub fn encode_record(tenant: &str, batch: RecordBatch) -> Result<WalRecord> {
    // Sized up front: growing a ~0.5 MB buffer step by step (copying, and faulting in fresh
    // zeroed pages each time) was ~8% of the server's CPU under load (perf, BENCHMARKS.md).
    let ipc_overhead = 16 << 10; // the schema message and per-buffer padding
    let mut framed =
        Vec::with_capacity(11 + tenant.len() + batch.get_array_memory_size() + ipc_overhead);
    framed.extend_from_slice(&[0u8; 8]);
    framed.push(FORMAT_ARROW_IPC);
    let tenant_len = u16::try_from(tenant.len())
        .map_err(|_| Error::Internal("tenant id longer than 65535 bytes".into()))?;
    framed.extend_from_slice(&tenant_len.to_le_bytes());
    framed.extend_from_slice(tenant.as_bytes());
    {
        let mut writer = StreamWriter::try_new(&mut framed, batch.schema_ref())?;
        writer.write(&batch)?;
        writer.finish()?;
    }
    let payload_len = u32::try_from(framed.len() - 8)
        .map_err(|_| Error::Internal("wal record over 4 GiB".into()))?;
    let crc = crc32fast::hash(&framed[8..]);
    framed[0..4].copy_from_slice(&payload_len.to_le_bytes());
    framed[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(WalRecord {
        tenant: tenant.to_string(),
        batch,
        framed,
    })
}

fn decode_payload(payload: &[u8]) -> Result<(String, RecordBatch)> {
    let corrupt = |why: &str| Error::Corrupt(format!("wal record: {why}"));
    if payload.first() != Some(&FORMAT_ARROW_IPC) || payload.len() < 3 {
        return Err(corrupt("unknown format"));
    }
    let tenant_len = u16::from_le_bytes([payload[1], payload[2]]) as usize;
    let tenant = payload
        .get(3..3 + tenant_len)
        .ok_or_else(|| corrupt("tenant past end"))?;
    let tenant = String::from_utf8(tenant.to_vec()).map_err(|_| corrupt("tenant not utf-8"))?;
    let mut reader = StreamReader::try_new(&payload[3 + tenant_len..], None)?;
    let batch = reader
        .next()
        .ok_or_else(|| corrupt("no batch in record"))??;
    Ok((tenant, crate::schema::upgrade(batch)?))
}

/// The records of one segment found on replay.
#[derive(Debug)]
pub struct ReplayedSegment {
    pub seq: u64,
    pub records: Vec<(String, RecordBatch)>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Sequence numbers of the segments in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name.strip_suffix(".wal").and_then(|s| s.parse().ok()) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Reads every segment in `dir`, truncating a torn tail where one is found.
pub fn replay(dir: &Path) -> Result<Vec<ReplayedSegment>> {
    let mut out = Vec::new();
    for seq in list_segments(dir)? {
        let path = segment_path(dir, seq);
        let mut data = Vec::new();
        File::open(&path)?.read_to_end(&mut data)?;
        let mut records = Vec::new();
        let mut pos = if data.starts_with(MAGIC) {
            HEADER_LEN
        } else {
            0
        };
        let mut torn = pos == 0 && !data.is_empty();
        while !torn && pos < data.len() {
            let Some(header) = data.get(pos..pos + 8) else {
                torn = true;
                break;
            };
            let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let body = (len <= MAX_RECORD_LEN)
                .then(|| data.get(pos + 8..pos + 8 + len as usize))
                .flatten();
            match body {
                Some(body) if crc32fast::hash(body) == crc => match decode_payload(body) {
                    Ok(record) => {
                        records.push(record);
                        pos += 8 + len as usize;
                    }
                    Err(e) => {
                        tracing::warn!(segment = %path.display(), offset = pos, error = %e, "undecodable wal record");
                        torn = true;
                    }
                },
                _ => torn = true,
            }
        }
        if torn {
            tracing::warn!(
                segment = %path.display(),
                offset = pos,
                kept_records = records.len(),
                "torn or corrupt wal tail; truncating"
            );
            let file = OpenOptions::new().write(true).open(&path)?;
            file.set_len(pos.max(HEADER_LEN) as u64)?;
            if pos < HEADER_LEN {
                let mut file = file;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(MAGIC)?;
            }
            File::open(&path)?.sync_all()?;
        }
        out.push(ReplayedSegment { seq, records });
    }
    Ok(out)
}

/// Deletes the segments with a sequence number up to and including `seq`.
pub fn remove_through(dir: &Path, seq: u64) -> Result<usize> {
    let mut removed = 0;
    for s in list_segments(dir)? {
        if s <= seq {
            fs::remove_file(segment_path(dir, s))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Called on the writer thread once records are durable, before their writers are answered.
pub type OnDurable = Box<dyn FnMut(u64, Vec<WalRecord>) + Send>;

enum Command {
    Append(WalRecord, oneshot::Sender<Result<()>>),
    Rotate(oneshot::Sender<Result<u64>>),
}

/// Handle to the writer thread. Dropping it closes the log after the records already sent.
pub struct Wal {
    tx: Option<mpsc::Sender<Command>>,
    thread: Option<JoinHandle<()>>,
    dir: PathBuf,
}

impl Wal {
    /// Opens the log in `dir` with a fresh segment after `last_seq`, the highest existing one.
    pub fn start(dir: &Path, last_seq: u64, on_durable: OnDurable) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let writer = SegmentWriter::create(dir, last_seq + 1)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("spanlake-wal".into())
            .spawn(move || run(writer, rx, on_durable))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record; returns once it is fsynced and published.
    pub async fn append(&self, record: WalRecord) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Append(record, done))?;
        wait.await.map_err(|_| Error::Closed)?
    }

    /// Closes the current segment and opens the next; returns the closed segment's number.
    /// Every record published before this returns is in a segment at or below that number.
    pub async fn rotate(&self) -> Result<u64> {
        let (done, wait) = oneshot::channel();
        self.send(Command::Rotate(done))?;
        wait.await.map_err(|_| Error::Closed)?
    }

    fn send(&self, command: Command) -> Result<()> {
        self.tx
            .as_ref()
            .ok_or(Error::Closed)?
            .send(command)
            .map_err(|_| Error::Closed)
    }

    /// Stops the writer thread after the records already sent.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

struct SegmentWriter {
    dir: PathBuf,
    seq: u64,
    file: File,
    committed_len: u64,
}

impl SegmentWriter {
    fn create(dir: &Path, seq: u64) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(segment_path(dir, seq))?;
        file.write_all(MAGIC)?;
        file.sync_all()?;
        sync_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            seq,
            file,
            committed_len: HEADER_LEN as u64,
        })
    }

    /// Writes and fsyncs `records`; on failure the segment is cut back to its last good length
    /// so that a later record is never hidden behind a half-written one.
    fn commit(&mut self, records: &[WalRecord]) -> io::Result<()> {
        let result = (|| {
            for r in records {
                self.file.write_all(&r.framed)?;
            }
            let started = std::time::Instant::now();
            let synced = self.file.sync_data();
            metrics::histogram!("spanlake_wal_fsync_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            synced
        })();
        match result {
            Ok(()) => {
                let written = records.iter().map(|r| r.framed.len() as u64).sum::<u64>();
                self.committed_len += written;
                metrics::counter!("spanlake_wal_written_bytes_total").increment(written);
                metrics::gauge!("spanlake_wal_segment_bytes").set(self.committed_len as f64);
                Ok(())
            }
            Err(e) => {
                let cut = self.file.set_len(self.committed_len).and_then(|_| {
                    self.file
                        .seek(SeekFrom::Start(self.committed_len))
                        .map(drop)
                });
                if cut.is_err() {
                    // The file is in an unknown state: continue in a new segment.
                    if let Ok(next) = SegmentWriter::create(&self.dir, self.seq + 1) {
                        *self = next;
                    }
                }
                Err(e)
            }
        }
    }
}

fn run(mut writer: SegmentWriter, rx: mpsc::Receiver<Command>, mut on_durable: OnDurable) {
    let mut records = Vec::new();
    let mut waiters = Vec::new();
    let mut commit = |writer: &mut SegmentWriter,
                      records: &mut Vec<WalRecord>,
                      waiters: &mut Vec<oneshot::Sender<Result<()>>>| {
        if records.is_empty() {
            return;
        }
        match writer.commit(records) {
            Ok(()) => {
                on_durable(writer.seq, std::mem::take(records));
                for w in waiters.drain(..) {
                    let _ = w.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "wal write failed");
                records.clear();
                let kind = e.kind();
                for w in waiters.drain(..) {
                    let _ = w.send(Err(Error::Io(io::Error::new(kind, e.to_string()))));
                }
            }
        }
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(record, done) => {
                    records.push(record);
                    waiters.push(done);
                }
                Command::Rotate(done) => {
                    commit(&mut writer, &mut records, &mut waiters);
                    let sealed = writer.seq;
                    let result = SegmentWriter::create(&writer.dir, sealed + 1).map(|next| {
                        writer = next;
                        sealed
                    });
                    let _ = done.send(result);
                }
            }
            // Group commit: take whatever else is already waiting, up to a bound.
            if records.len() < 4096 {
                next = rx.try_recv().ok();
            }
        }
        commit(&mut writer, &mut records, &mut waiters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{SpanBatchBuilder, SpanFields, SpanKind};
    use std::sync::{Arc, Mutex};

    fn batch(n: usize) -> RecordBatch {
        let mut b = SpanBatchBuilder::new();
        for i in 0..n {
            let id = (i as u64 + 1).to_be_bytes();
            b.begin_span(&SpanFields {
                trace_id: &[7; 16],
                span_id: &id,
                service_name: "svc",
                name: "op",
                kind: SpanKind::Internal,
                start_unix_nano: 1,
                end_unix_nano: 2,
                ..SpanFields::default()
            });
            b.end_span();
        }
        b.finish().unwrap()
    }

    #[tokio::test]
    async fn appends_replay_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let published = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&published);
        let mut wal = Wal::start(
            dir.path(),
            0,
            Box::new(move |seq, records| {
                sink.lock()
                    .unwrap()
                    .extend(records.into_iter().map(|r| (seq, r.tenant)));
            }),
        )
        .unwrap();
        wal.append(encode_record("a", batch(3)).unwrap())
            .await
            .unwrap();
        assert_eq!(wal.rotate().await.unwrap(), 1);
        wal.append(encode_record("b", batch(2)).unwrap())
            .await
            .unwrap();
        wal.close();
        assert_eq!(
            *published.lock().unwrap(),
            vec![(1, "a".to_string()), (2, "b".to_string())]
        );

        // Tear the last record in half, as a crash mid-write would.
        let path = segment_path(dir.path(), 2);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let segments = replay(dir.path()).unwrap();
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].records.len(), 1);
        assert_eq!(segments[0].records[0].1.num_rows(), 3);
        assert!(segments[1].records.is_empty());
        assert_eq!(fs::metadata(&path).unwrap().len(), HEADER_LEN as u64);

        assert_eq!(remove_through(dir.path(), 1).unwrap(), 1);
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2]);
    }
}
