use anyhow::Context;
use api::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Secrets may come from files (NAME_FILE: Docker and Swarm secrets).
    let config: Config = common::settings::parse();
    common::telemetry::init(config.log_format, "info,tower_http=info");
    let listener = TcpListener::bind(config.api_addr)
        .await
        .with_context(|| format!("cannot listen on API_ADDR {}", config.api_addr))?;
    let functions_listener = TcpListener::bind(config.functions_addr)
        .await
        .with_context(|| format!("cannot listen on FUNCTIONS_ADDR {}", config.functions_addr))?;
    let metrics_listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on METRICS_ADDR {}", config.metrics_addr))?;
    let listeners = api::Listeners {
        api: listener,
        functions: functions_listener,
        metrics: metrics_listener,
    };
    api::run(config, listeners, common::shutdown::signal()).await
}
