//! `meridian demo`: the first thing a newcomer runs.
//!
//! Until replication lands this starts one node on free local ports with a throw-away data
//! directory, writes a few keys of every type through the engine, shows them, and prints how
//! to connect with redis-cli.

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use node::NodeConfig;
use node::engine::EngineHandle;
use resp::Reply;
use std::net::TcpListener;

fn free_addr() -> anyhow::Result<std::net::SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

async fn run_command(engine: &EngineHandle, words: &[&str]) -> anyhow::Result<Reply> {
    let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
    let spec = node::cmd::lookup(&args[0])
        .ok_or_else(|| anyhow::anyhow!("unknown command {}", words[0]))?;
    let mut replies = engine.run(vec![(spec, args)]).await?;
    Ok(replies.replies.remove(0))
}

fn show(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Reply::Int(n) => format!("(integer) {n}"),
        Reply::Simple(s) => s.to_string(),
        Reply::Null => "(nil)".into(),
        Reply::Array(items) | Reply::Set(items) => {
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        }
        Reply::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{}={}", show(k), show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => format!("{other:?}"),
    }
}

/// Runs the demo; with `exit`, stops after the workload instead of serving until Ctrl-C.
pub async fn run(exit: bool, metrics: Option<PrometheusHandle>) -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("meridian-demo-{}", std::process::id()));
    let mut config = NodeConfig::with_defaults("demo-1", data_dir.clone());
    config.region = "local".into();
    config.resp_addr = free_addr()?;
    config.http_addr = free_addr()?;
    let (resp_addr, http_addr) = (config.resp_addr, config.http_addr);
    let (engine_tx, engine_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let node = tokio::spawn(node::run(
        config,
        metrics,
        async move {
            let _ = stop_rx.await;
        },
        move |shared| {
            let _ = engine_tx.send(shared.engine.clone());
        },
    ));
    let engine = engine_rx.await?;
    println!("Meridian demo: one node in region 'local' (replication across regions comes next).");
    println!("  Redis protocol: {resp_addr}   HTTP: http://{http_addr}/v1/status\n");
    let workload: &[&[&str]] = &[
        &["SET", "greeting", "hello from meridian"],
        &["GET", "greeting"],
        &["INCRBY", "visits", "41"],
        &["INCR", "visits"],
        &["HSET", "sensor:42", "temp", "21.5", "unit", "C"],
        &["HGETALL", "sensor:42"],
        &["SADD", "regions", "eu", "us", "ap"],
        &["SCARD", "regions"],
        &["SET", "session", "short-lived", "EX", "60"],
        &["TTL", "session"],
        &["DBSIZE"],
    ];
    for words in workload {
        let reply = run_command(&engine, words).await?;
        println!("  > {:<40} {}", words.join(" "), show(&reply));
    }
    println!("\nEvery write above was fsynced before it was acknowledged (--fsync always).");
    println!(
        "Connect with:  redis-cli -h {} -p {}",
        resp_addr.ip(),
        resp_addr.port()
    );
    drop(engine);
    if !exit {
        println!("Serving until Ctrl-C.");
        crate::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    node.await??;
    let _ = std::fs::remove_dir_all(&data_dir);
    println!("Demo stopped.");
    Ok(())
}
