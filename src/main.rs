//! The `spanlake` binary: wires the collector, storage and query crates into one server, and
//! offers a SQL client.

mod auth;
mod bench;
mod cli;
mod loadgen;
mod serve;
mod telemetry;
mod tls;
mod workload;

use clap::Parser;

/// glibc's malloc keeps freed memory in per-thread arenas: under sustained ingest the server's
/// resident memory grew past 3 GB with a 512 MiB buffer limit, against ~1.2 GB with two arenas
/// (BENCHMARKS.md, "Resident memory"). mimalloc returns it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(*args).await,
            cli::Command::Sql(args) => cli::sql(args).await,
            cli::Command::Bench(cli::BenchCommand::Ingest(args)) => bench::ingest(args).await,
            cli::Command::Bench(cli::BenchCommand::Gen(args)) => bench::generate(args).await,
            cli::Command::Bench(cli::BenchCommand::Lookup(args)) => bench::lookup(args).await,
            cli::Command::Loadgen(args) => loadgen::run(*args).await,
        }
    });
    // Everything acknowledged is flushed by now; a task stuck in a long poll (a cancelled
    // query's) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
