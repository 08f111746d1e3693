use anyhow::Context;
use tokio::net::TcpListener;
use worker::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Secrets may come from files (NAME_FILE: Docker and Swarm secrets).
    let config: Config = common::settings::parse();
    common::telemetry::init(config.log_format, "info");
    let metrics_listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR {}", config.metrics_addr))?;
    worker::run(config, metrics_listener, common::shutdown::signal()).await?;
    Ok(())
}
