//! criterion benches of the hot functions on the ingest and query paths, each beside the
//! reference it should be compared with (see BENCHMARKS.md):
//!
//! - `otlp/prost_decode` (reference) vs `otlp/decode_to_arrow`: one 512-span export request;
//! - `wal/encode_record` and `wal/append_fsync`: one request's Arrow batch into the log;
//! - `parquet/arrow_writer_plain` (reference) vs `parquet/flush_encode`: 100 000 spans;
//! - `assemble/10k_span_trace`: rows of one 10 000-span trace into the call tree.
//!
//! Run: `cargo bench --bench hot_paths` (add `-- --quick` for a short run).

#[path = "../src/workload.rs"]
#[allow(dead_code)]
mod workload;

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use workload::Workload;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn batches(requests: &[ExportTraceServiceRequest]) -> Vec<RecordBatch> {
    requests
        .iter()
        .map(|r| spanlake_collector::otlp::decode(r).unwrap().batch)
        .collect()
}

fn otlp(c: &mut Criterion) {
    let request = Workload::default().requests(512, now_ns()).remove(0);
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let body = request.encode_to_vec();
    let mut group = c.benchmark_group("otlp");
    group.throughput(Throughput::Elements(spans as u64));
    group.bench_function("prost_decode", |b| {
        b.iter(|| black_box(ExportTraceServiceRequest::decode(&body[..]).unwrap()))
    });
    group.bench_function("decode_to_arrow", |b| {
        b.iter(|| {
            let request = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            black_box(spanlake_collector::otlp::decode(&request).unwrap())
        })
    });
    group.finish();
}

fn wal(c: &mut Criterion) {
    let request = Workload::default().requests(512, now_ns()).remove(0);
    let batch = spanlake_collector::otlp::decode(&request).unwrap().batch;
    let mut group = c.benchmark_group("wal");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    group.bench_function("encode_record", |b| {
        b.iter(|| black_box(spanlake_storage::wal::encode_record("bench", batch.clone()).unwrap()))
    });
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wal = spanlake_storage::wal::Wal::start(dir.path(), 0, Box::new(|_, _| {})).unwrap();
    // One writer, one record at a time: each append pays a whole fdatasync (the server
    // amortises it over every request waiting at that moment).
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("append_fsync", |b| {
        b.iter_batched(
            || spanlake_storage::wal::encode_record("bench", batch.clone()).unwrap(),
            |record| rt.block_on(wal.append(record)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn parquet(c: &mut Criterion) {
    let spans = 100_000;
    let batches = batches(&Workload::default().requests(spans, now_ns()));
    let mut group = c.benchmark_group("parquet");
    group.throughput(Throughput::Elements(spans as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("arrow_writer_plain", |b| {
        b.iter(|| {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let mut out = Vec::new();
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(&mut out, batches[0].schema(), Some(props))
                    .unwrap();
            for batch in &batches {
                writer.write(batch).unwrap();
            }
            writer.close().unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("flush_encode", |b| {
        b.iter(|| {
            black_box(
                spanlake_storage::parquet_file::encode(
                    &batches,
                    spanlake_storage::parquet_file::Effort::Flush,
                )
                .unwrap()
                .bytes
                .len(),
            )
        })
    });
    group.finish();
}

fn assemble(c: &mut Criterion) {
    let workload = Workload {
        spans_per_trace: 10_000,
        spans_per_request: 10_000,
        ..Workload::default()
    };
    let batches = batches(&workload.requests(10_000, now_ns()));
    let records = spanlake_query::records::span_records(&batches).unwrap();
    assert_eq!(records.len(), 10_000);
    let mut group = c.benchmark_group("assemble");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.sample_size(20);
    group.bench_function("10k_span_trace", |b| {
        b.iter_batched(
            || records.clone(),
            |records| black_box(spanlake_query::assemble::assemble(records)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, otlp, wal, parquet, assemble);
criterion_main!(benches);
