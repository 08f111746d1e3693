//! `bench`: benchmarks a running api and its workers (see `bench --help` and docs/benchmarks.md).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::run(bench::Config::parse()).await?;
    Ok(())
}
