//! The `spanlake` binary: wires the collector, storage and query crates into one server, and
//! offers a SQL client.

mod auth;
mod bench;
mod cli;
mod serve;
mod telemetry;
mod workload;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            cli::Command::Serve(args) => serve::run(*args).await,
            cli::Command::Sql(args) => cli::sql(args).await,
            cli::Command::Bench(cli::BenchCommand::Ingest(args)) => bench::ingest(args).await,
            cli::Command::Bench(cli::BenchCommand::Gen(args)) => bench::generate(args).await,
            cli::Command::Bench(cli::BenchCommand::Lookup(args)) => bench::lookup(args).await,
        }
    })
}
