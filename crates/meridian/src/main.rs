//! The `meridian` binary: command line, configuration, logging, signals.

mod cert;
mod config;
mod demo;
mod keyring;

use anyhow::Context;
use clap::{Parser, Subcommand};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Meridian: one logical database served by nodes in many regions, speaking the Redis
/// protocol and HTTP/JSON.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Server(Box<config::ServerArgs>),
    /// Make the cluster's CA and certificates for nodes and clients.
    #[command(subcommand)]
    Cert(cert::CertCommand),
    /// Edit a node's gossip keyring (install, use, remove keys; generate one).
    #[command(subcommand)]
    Keyring(keyring::KeyringCommand),
    /// Run a local demonstration: three regions with WAN delay, replicating a visible workload.
    Demo {
        /// Run the demonstration and exit instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")
    };
    match cli.command {
        Command::Server(args) => {
            let config = config::resolve(*args)?;
            runtime()?.block_on(serve(config))
        }
        Command::Demo { exit } => runtime()?.block_on(demo::run_demo(exit, install_metrics())),
        Command::Cert(command) => cert::run(command),
        Command::Keyring(command) => keyring::run(command),
    }
}

/// Installs the Prometheus recorder; `/metrics` renders from the handle.
fn install_metrics() -> Option<PrometheusHandle> {
    let buckets = [
        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
        1.0,
    ];
    // Replication lag in millisecond steps, finest where the benchmark's targets lie (one-way
    // WAN delay + 10 ms: 10, 50 and 120 ms); the benchmark reads its quantiles from these.
    let lag_buckets: Vec<f64> = (1..=20)
        .chain((22..=40).step_by(2))
        .chain((42..=60).step_by(2))
        .chain((65..=130).step_by(5))
        .chain([
            140, 150, 175, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000,
            30000, 60000,
        ])
        .map(|ms| f64::from(ms) / 1000.0)
        .collect();
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("meridian_replication_lag_seconds".into()),
            &lag_buckets,
        )
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("seconds".into()), &buckets));
    match builder.and_then(|b| b.install_recorder()) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "metrics disabled");
            None
        }
    }
}

async fn serve(config: node::NodeConfig) -> anyhow::Result<()> {
    if config.certs_dir.is_none() && !config.peer_addr.ip().is_loopback() {
        tracing::warn!(
            peer_addr = %config.peer_addr,
            "--insecure-peers: peer links run without TLS; anyone on the path can read the replication stream"
        );
    }
    tracing::info!(
        node_id = %config.node_id, region = %config.region, resp = %config.resp_addr, http = %config.http_addr,
        data_dir = %config.data_dir.display(), fsync = ?config.fsync, "starting"
    );
    node::run(config, install_metrics(), shutdown_signal(), |_| {
        tracing::info!("ready")
    })
    .await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}
