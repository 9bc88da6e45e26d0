//! `meridian demo`: the first thing a newcomer runs.
//!
//! Starts three nodes in this process, one per region (eu, us, ap), on free local ports with
//! throw-away data directories and a simulated WAN delay between the regions (one way: eu-us
//! 40 ms, us-ap 75 ms, eu-ap 110 ms). Then it runs a short visible workload: a write in each
//! region and how long it took to show up in the others, a counter incremented in every region
//! at once, and one region cut off, written to on both sides and healed. It prints where to
//! connect with redis-cli and keeps serving until Ctrl-C (or exits with `--exit`). Last, a
//! client that knows only its region's name finds its node through the sentinels, and fails
//! over when that node stops, with the measured gap; the node comes back once caught up.
//!
//! It runs secured, as a real cluster should: a CA and node certificates made in the
//! temporary directory (`meridian cert`'s code), peer links over mutual TLS, gossip encrypted
//! under a generated keyring, and clients logging in with a generated password, over the
//! plain port or TLS.

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use node::{NodeConfig, Shared};
use resp::Reply;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One-way delays between the demo's regions, in milliseconds.
const WAN_DELAY_MS: [(&str, &str, u64); 3] =
    [("eu", "us", 40), ("us", "ap", 75), ("eu", "ap", 110)];
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// How long the demo waits for anything to replicate before it calls the run failed.
const PATIENCE: Duration = Duration::from_secs(20);

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn args(words: &[&str]) -> anyhow::Result<(&'static node::cmd::Spec, Vec<Bytes>)> {
    let args: Vec<Bytes> = words.iter().map(|w| Bytes::from(w.to_string())).collect();
    let spec = node::cmd::lookup(&args[0])
        .ok_or_else(|| anyhow::anyhow!("unknown command {}", words[0]))?;
    Ok((spec, args))
}

/// Runs one command on a node, as a client of that region would.
async fn run(node: &Shared, words: &[&str]) -> anyhow::Result<Reply> {
    let (spec, args) = args(words)?;
    if matches!(spec.runs, node::cmd::Runs::Read(_)) {
        return Ok(node.engine.read(spec, &args));
    }
    Ok(node.engine.run(vec![(spec, args)]).await?.replies.remove(0))
}

fn show(reply: &Reply) -> String {
    match reply {
        Reply::Bulk(b) => format!("\"{}\"", String::from_utf8_lossy(b)),
        Reply::Int(n) => format!("(integer) {n}"),
        Reply::Simple(s) => s.to_string(),
        Reply::Null => "(nil)".into(),
        Reply::Array(items) | Reply::Set(items) => {
            let mut items: Vec<String> = items.iter().map(show).collect();
            items.sort();
            format!("[{}]", items.join(", "))
        }
        Reply::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{}={}", show(k), show(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => format!("{other:?}"),
    }
}

/// Waits until `read` gives `want` on `node`; answers how long that took.
async fn until(node: &Shared, read: &[&str], want: &str) -> anyhow::Result<Duration> {
    until_since(Instant::now(), node, read, want).await
}

/// Waits until `read` gives `want` on `node`; answers how long after `started` that was.
async fn until_since(
    started: Instant,
    node: &Shared,
    read: &[&str],
    want: &str,
) -> anyhow::Result<Duration> {
    loop {
        if show(&run(node, read).await?) == want {
            return Ok(started.elapsed());
        }
        if started.elapsed() > PATIENCE {
            anyhow::bail!(
                "{} never showed {want} for {}",
                node.config.region,
                read.join(" ")
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn connected(node: &Shared, peers: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut view = node.cluster.view.clone();
    loop {
        let up = view
            .borrow_and_update()
            .members
            .iter()
            .filter(|m| m.link)
            .count();
        if up == peers {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            anyhow::bail!("{} did not reach its peers", node.config.region);
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), view.changed()).await;
    }
}

/// Runs the demo; with `exit`, stops after the workload instead of serving until Ctrl-C.
pub async fn run_demo(exit: bool, metrics: Option<PrometheusHandle>) -> anyhow::Result<()> {
    let base = std::env::temp_dir().join(format!("meridian-demo-{}", std::process::id()));
    let secrets = Secrets::make(&base)?;
    let mut cluster = Cluster {
        metrics,
        nodes: Vec::new(),
    };
    let mut seed = None;
    for region in REGIONS {
        let name = format!("{region}-1");
        let mut config = NodeConfig::with_defaults(&name, base.join(&name));
        config.region = region.into();
        config.resp_addr = free_addr()?;
        config.http_addr = free_addr()?;
        config.peer_addr = free_addr()?;
        config.join = seed.iter().cloned().collect();
        seed.get_or_insert(config.peer_addr.to_string());
        config.wan_delay_ms = WAN_DELAY_MS
            .iter()
            .map(|(a, b, ms)| (a.to_string(), b.to_string(), *ms))
            .collect();
        config.sentinel_addr = Some(free_addr()?);
        config.mqtt_addr = Some(free_addr()?);
        secrets.secure(&mut config, &base)?;
        let running = cluster.start(config).await?;
        cluster.nodes.push(running);
    }
    let mut result = workload(&cluster.shared(), &secrets).await;
    if result.is_ok() {
        result = failover(&mut cluster, &secrets).await;
    }
    if result.is_ok() {
        result = sensors(&cluster.shared(), &secrets).await;
    }
    if result.is_ok() && !exit {
        println!("Serving until Ctrl-C.");
        crate::shutdown_signal().await;
    }
    for i in 0..cluster.nodes.len() {
        cluster.stop(i).await?;
    }
    let _ = std::fs::remove_dir_all(&base);
    println!("Demo stopped.");
    result
}

/// The demo's nodes, each running in this process until stopped.
struct Cluster {
    metrics: Option<PrometheusHandle>,
    nodes: Vec<Running>,
}

/// A node of the demo: its settings, and while it runs, its state and how to stop it.
struct Running {
    config: NodeConfig,
    shared: Option<Arc<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), node::StartError>>>,
}

impl Cluster {
    async fn start(&self, config: NodeConfig) -> anyhow::Result<Running> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(node::run(
            config.clone(),
            self.metrics.clone(),
            async move {
                let _ = stop_rx.await;
            },
            move |shared| {
                let _ = ready_tx.send(shared.clone());
            },
        ));
        let shared = match ready_rx.await {
            Ok(shared) => shared,
            // It stopped before it was ready: why is in its result.
            Err(_) => {
                task.await??;
                anyhow::bail!("{} stopped as it started", config.node_id);
            }
        };
        Ok(Running {
            config,
            shared: Some(shared),
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// The running nodes.
    fn shared(&self) -> Vec<Arc<Shared>> {
        self.nodes.iter().filter_map(|n| n.shared.clone()).collect()
    }

    /// Stops node `i` as SIGTERM would: it hands its clients over, then stops.
    async fn stop(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        node.shared = None;
        if let Some(stop) = node.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = node.task.take() {
            task.await??;
        }
        Ok(())
    }

    /// Starts node `i` again on its data directory.
    async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let config = self.nodes[i].config.clone();
        self.nodes[i] = self.start(config).await?;
        Ok(())
    }
}

/// What secures the demo's cluster: its CA, the gossip keyring, the clients' password.
struct Secrets {
    ca_dir: std::path::PathBuf,
    ca_key: std::path::PathBuf,
    keyring: std::path::PathBuf,
    password: String,
}

impl Secrets {
    fn make(base: &std::path::Path) -> anyhow::Result<Secrets> {
        let secrets = Secrets {
            ca_dir: base.join("ca"),
            ca_key: base.join("ca-safe").join("ca.key"),
            keyring: base.join("gossip.keys"),
            password: random_hex(8)?,
        };
        let dirs = crate::cert::Dirs {
            certs_dir: secrets.ca_dir.clone(),
            ca_key: secrets.ca_key.clone(),
        };
        crate::cert::create_ca(&dirs, 1)?;
        std::fs::write(&secrets.keyring, random_hex(32)? + "\n")?;
        Ok(secrets)
    }

    /// Gives `config` its certificates (made now), the keyring, the password and a TLS port.
    fn secure(&self, config: &mut NodeConfig, base: &std::path::Path) -> anyhow::Result<()> {
        let certs = base.join(format!("certs-{}", config.node_id));
        std::fs::create_dir_all(&certs)?;
        std::fs::copy(self.ca_dir.join("ca.crt"), certs.join("ca.crt"))?;
        let dirs = crate::cert::Dirs {
            certs_dir: certs.clone(),
            ca_key: self.ca_key.clone(),
        };
        crate::cert::create_node(&dirs, &config.node_id, &["127.0.0.1".into()], 1)?;
        config.tls = Some(node::tls::TlsConfig {
            port: free_addr()?.port(),
            cert_file: certs.join("node.crt"),
            key_file: certs.join("node.key"),
            ca_cert_file: Some(certs.join("ca.crt")),
            auth_clients: node::tls::ClientAuth::Optional,
        });
        config.certs_dir = Some(certs);
        config.gossip_keyring = Some(self.keyring.clone());
        config.requirepass = Some(self.password.clone());
        Ok(())
    }
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

async fn workload(nodes: &[Arc<Shared>], secrets: &Secrets) -> anyhow::Result<()> {
    let (eu, us, ap) = (&nodes[0], &nodes[1], &nodes[2]);
    println!("Meridian demo: three regions on this machine, simulated WAN delay between them");
    println!("(one way: eu-us 40 ms, us-ap 75 ms, eu-ap 110 ms). Secured as a real cluster:");
    println!("peer links over mutual TLS with certificates from a CA made for the demo, gossip");
    println!("encrypted under a generated keyring, clients logging in with a password.\n");
    for n in nodes {
        let c = &n.config;
        println!(
            "  {:<3} redis-cli -p {:<5} -a {}   http://{}/v1/status",
            c.region,
            c.resp_addr.port(),
            secrets.password,
            c.http_addr
        );
    }
    if let Some(tls) = &eu.config.tls {
        println!(
            "  or over TLS: redis-cli -p {} --tls --cacert {} -a {}",
            tls.port,
            secrets.ca_dir.join("ca.crt").display(),
            secrets.password
        );
    }
    for n in nodes {
        connected(n, 2).await?;
    }
    println!("\n1. A write in each region, and when the other regions see it:");
    // (where, the write, a read that shows it, what the read gives once it arrived)
    type Shown<'a> = (&'a Arc<Shared>, &'a [&'a str], &'a [&'a str], &'a str);
    let writes: [Shown; 3] = [
        (
            eu,
            &["SET", "greeting", "hello from eu"],
            &["GET", "greeting"],
            "\"hello from eu\"",
        ),
        (
            us,
            &["HSET", "sensor:us", "temp", "21.5"],
            &["HGET", "sensor:us", "temp"],
            "\"21.5\"",
        ),
        (
            ap,
            &["SADD", "visited", "tokyo", "sydney"],
            &["SCARD", "visited"],
            "(integer) 2",
        ),
    ];
    for (origin, write, read, want) in writes {
        run(origin, write).await?;
        let acknowledged = Instant::now();
        print!("   {:<3} > {:<34}", origin.config.region, write.join(" "));
        for other in nodes.iter().filter(|n| !Arc::ptr_eq(n, origin)) {
            let took = until_since(acknowledged, other, read, want).await?;
            print!(" {} after {:>3} ms", other.config.region, took.as_millis());
        }
        println!();
    }

    println!("\n2. INCR visits, 100 times in every region at once:");
    let mut incrs = Vec::new();
    for n in nodes {
        let n = n.clone();
        incrs.push(tokio::spawn(async move {
            for _ in 0..100 {
                run(&n, &["INCR", "visits"]).await?;
            }
            anyhow::Ok(())
        }));
    }
    for i in incrs {
        i.await??;
    }
    for n in nodes {
        until(n, &["GET", "visits"], "\"300\"").await?;
        println!("   {:<3} GET visits -> \"300\"", n.config.region);
    }

    println!("\n3. ap is cut off; both sides keep taking writes:");
    ap.cluster.set_isolated(true);
    wait_down(eu, "ap").await?;
    run(eu, &["SET", "status", "written in eu during the cut"]).await?;
    run(eu, &["SADD", "visited", "paris"]).await?;
    run(ap, &["SADD", "visited", "seoul"]).await?;
    run(ap, &["INCRBY", "visits", "5"]).await?;
    print_visits(nodes).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    print_lag(eu);
    println!("   healing the partition...");
    let healed = Instant::now();
    ap.cluster.set_isolated(false);
    let merged = "[\"paris\", \"seoul\", \"sydney\", \"tokyo\"]";
    for n in nodes {
        until(n, &["SMEMBERS", "visited"], merged).await?;
        until(n, &["GET", "visits"], "\"305\"").await?;
        until(n, &["GET", "status"], "\"written in eu during the cut\"").await?;
    }
    println!(
        "   every region converged {} ms after the heal:",
        healed.elapsed().as_millis()
    );
    print_visits(nodes).await?;
    println!("\n4. A moment later, replication as eu sees it:");
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_lag(eu);
    println!("\nEvery write was fsynced before it was acknowledged (--fsync always).");
    Ok(())
}

/// How many sensors publish in each region in step 6, and for how long.
const SENSORS_PER_REGION: usize = 2;
const SENSING: Duration = Duration::from_secs(4);

/// Step 6: sensors in every region publish readings over MQTT to their region's node; one
/// fused series of the group, computed in every region from the merged readings, is the same
/// everywhere, and says which of its buckets the watermark made final.
async fn sensors(nodes: &[Arc<Shared>], secrets: &Secrets) -> anyhow::Result<()> {
    println!(
        "\n6. Sensors: {} devices in each region publish a temperature every 100 ms over MQTT",
        SENSORS_PER_REGION
    );
    println!(
        "   (QoS 1, topic sensors/plant/<device>/temp) to their region's node; one series fuses"
    );
    println!(
        "   them: the median of the devices' per-second means, kept by a rule of every region."
    );
    run(
        &nodes[0],
        &[
            "TS.FUSE",
            "plant:temp",
            "AGGREGATION",
            "avg",
            "1000",
            "REDUCE",
            "median",
            "LATENESS",
            "1000",
            "FILTER",
            "group=plant",
            "metric=temp",
        ],
    )
    .await?;
    let mut devices = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for d in 0..SENSORS_PER_REGION {
            let addr = node.config.mqtt_addr.expect("the demo's nodes take MQTT");
            let device = format!("{}-{}", node.config.region, d + 1);
            // Each device reads a little differently: the median keeps them honest.
            let bias = i as f64 * 0.2 + d as f64 * 0.1;
            let password = secrets.password.clone();
            devices.push(tokio::spawn(async move {
                sensor(addr, &password, &device, bias).await
            }));
        }
    }
    let mut published = 0;
    for d in devices {
        published += d.await??;
    }
    println!(
        "   {published} readings published and acknowledged (each PUBACK once stored); fused in every region:"
    );
    // Wait for the last bucket to be final everywhere: its end, the lateness, the WAN.
    let mut shown: Vec<String> = Vec::new();
    let started = Instant::now();
    loop {
        shown.clear();
        for node in nodes {
            let rows = run(node, &["TS.RANGE", "plant:temp", "-", "+", "WITHSTATUS"]).await?;
            shown.push(fused_rows(&rows));
        }
        let settled = shown.iter().all(|s| s == &shown[0] && !s.contains('~'));
        if settled || started.elapsed() > PATIENCE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (node, rows) in nodes.iter().zip(&shown) {
        let (mark, _) = node.engine.stats.watermark(node::engine::wall_ms());
        let lag = node::engine::wall_ms().saturating_sub(mark);
        println!(
            "   {:<3} {}   watermark {} ms behind",
            node.config.region, rows, lag
        );
    }
    if shown.iter().any(|s| s != &shown[0]) {
        anyhow::bail!("the regions' fused series differ");
    }
    println!(
        "   Every bucket is final (no ~) once the watermark passed its end plus 1 s of lateness."
    );
    Ok(())
}

/// A fused series' rows as `second:value` (`~` marks a provisional bucket, `!` a revised one).
fn fused_rows(rows: &Reply) -> String {
    let Reply::Array(rows) = rows else {
        return show(rows);
    };
    let cells: Vec<String> = rows
        .iter()
        .filter_map(|r| match r {
            Reply::Array(row) => match row.as_slice() {
                [Reply::Int(t), Reply::Double(v), Reply::Int(s)] => {
                    let mark = match s {
                        0 => "~",
                        2 => "!",
                        _ => "",
                    };
                    Some(format!("{:02}s {v:.2}{mark}", (t / 1000) % 60))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    cells.join(" | ")
}

/// One device: publishes a reading every 100 ms for [`SENSING`] at QoS 1 over MQTT 3.1.1, each
/// acknowledged before the next; answers how many it published.
async fn sensor(
    addr: SocketAddr,
    password: &str,
    device: &str,
    bias: f64,
) -> anyhow::Result<usize> {
    use rumqttc::mqttbytes::{QoS, v4};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let mut out = bytes::BytesMut::new();
    let mut connect = v4::Connect::new(device);
    connect.set_login("default", password);
    v4::Packet::Connect(connect).write(&mut out, 1 << 16)?;
    socket.write_all(&out).await?;
    let mut buf = bytes::BytesMut::new();
    let mut next = async |socket: &mut tokio::net::TcpStream| -> anyhow::Result<v4::Packet> {
        loop {
            match v4::Packet::read(&mut buf, 1 << 16) {
                Ok(p) => return Ok(p),
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => anyhow::bail!("{device}: {e}"),
            }
            if socket.read_buf(&mut buf).await? == 0 {
                anyhow::bail!("{device}: the node closed the connection");
            }
        }
    };
    match next(&mut socket).await? {
        v4::Packet::ConnAck(ack) if ack.code == v4::ConnectReturnCode::Success => {}
        other => anyhow::bail!("{device}: not connected: {other:?}"),
    }
    let topic = format!("sensors/plant/{device}/temp");
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < SENSING {
        let now = node::engine::wall_ms();
        let value = 21.0 + bias + 0.3 * ((now / 100) as f64 / 5.0).sin();
        let payload = format!("{{\"ts\": {now}, \"value\": {value:.2}}}");
        let mut publish = v4::Publish::new(&topic, QoS::AtLeastOnce, payload);
        publish.pkid = (sent % 60_000) as u16 + 1;
        out.clear();
        v4::Packet::Publish(publish).write(&mut out, 1 << 16)?;
        socket.write_all(&out).await?;
        match next(&mut socket).await? {
            v4::Packet::PubAck(_) => sent += 1,
            other => anyhow::bail!("{device}: {other:?} instead of PUBACK"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.clear();
    v4::Packet::Disconnect.write(&mut out, 16)?;
    socket.write_all(&out).await?;
    Ok(sent)
}

/// Step 5: a client that knows only its region's name fails over through the sentinels.
async fn failover(cluster: &mut Cluster, secrets: &Secrets) -> anyhow::Result<()> {
    println!(
        "\n5. A client of region eu knows only the region's name: it asks the sentinels (every"
    );
    println!(
        "   node's --sentinel-addr) for eu's node, as redis-py's Sentinel or ioredis do. eu-1"
    );
    println!("   stops (as SIGTERM stops a node), then comes back:");
    let sentinels: Vec<SocketAddr> = (cluster.nodes.iter())
        .filter_map(|n| n.config.sentinel_addr)
        .collect();
    let names: Vec<(SocketAddr, String)> = (cluster.nodes.iter())
        .map(|n| (n.config.resp_addr, n.config.node_id.clone()))
        .collect();
    let name_of = |addr: SocketAddr| {
        (names.iter())
            .find(|(a, _)| *a == addr)
            .map_or("?".to_string(), |(_, name)| name.clone())
    };
    let mut client = RegionClient::new("eu", sentinels.clone(), &secrets.password);
    let (_, first) = client.call(&[b"SET", b"failover:0", b"0"]).await?;
    println!("   the client writes to {} ({first})", name_of(first));
    // The client writes every 20 ms while eu-1 stops; each write's outcome is recorded.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let key = format!("failover:{i}");
                let answered = client.call(&[b"SET", key.as_bytes(), b"x"]).await;
                outcomes.push((Instant::now(), answered.ok().map(|(_, addr)| addr)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (client, outcomes)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    cluster.stop(0).await?;
    let stopped = stopping.elapsed();
    let us = cluster.nodes[1].shared.clone().expect("us-1 runs");
    let moved_at = Instant::now();
    while client_moved(&us, "eu") != Some("us-1".into()) {
        if moved_at.elapsed() > PATIENCE {
            anyhow::bail!("the sentinels never named another node for eu");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut client, outcomes) = writer.await?;
    let eu_addr = cluster.nodes[0].config.resp_addr;
    let last_eu = (outcomes.iter())
        .rev()
        .find(|(_, at)| *at == Some(eu_addr))
        .map(|(t, _)| *t);
    let first_other = (outcomes.iter()).find(|(_, at)| at.is_some_and(|a| a != eu_addr));
    let (Some(last_eu), Some((first_other, other))) = (last_eu, first_other) else {
        anyhow::bail!("the client did not move");
    };
    let lost = outcomes.iter().filter(|(_, at)| at.is_none()).count();
    println!(
        "   eu-1 handed its clients over and stopped in {} ms; the client's next write was",
        stopped.as_millis()
    );
    println!(
        "   acknowledged by {} (eu's nearest region) {} ms after its last one at eu-1 ({lost} in flight",
        name_of(other.expect("found as some")),
        first_other.duration_since(last_eu).as_millis()
    );
    println!("   when eu-1 closed the connection got no answer: a client retries those)");
    for i in 0..20 {
        run(&us, &["SET", &format!("while-eu-away:{i}"), "x"]).await?;
    }
    let restarted = Instant::now();
    cluster.restart(0).await?;
    while client_moved(&us, "eu") != Some("eu-1".into()) {
        if restarted.elapsed() > PATIENCE {
            anyhow::bail!("eu-1 was never named again");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let eu = cluster.nodes[0].shared.clone().expect("eu-1 runs again");
    let held = show(&run(&eu, &["EXISTS", "while-eu-away:0", "while-eu-away:19"]).await?);
    println!(
        "   eu-1 is back: named again {} ms after it started, once caught up (EXISTS of two",
        restarted.elapsed().as_millis()
    );
    println!(
        "   writes made at us-1 while it was away -> {held}); new connections of region eu go there:"
    );
    let mut fresh = RegionClient::new("eu", sentinels, &secrets.password);
    let (_, at) = fresh.call(&[b"PING"]).await?;
    println!("   a new client of eu -> {} ({at})", name_of(at));
    let (_, at) = client.call(&[b"PING"]).await?;
    println!(
        "   the old client stays at {} until its connection breaks (as with Redis Sentinel)",
        name_of(at)
    );
    Ok(())
}

/// The node `node`'s sentinel names for `region` now.
fn client_moved(node: &Shared, region: &str) -> Option<String> {
    let picture = node::discovery::Picture::of(node);
    picture.answer(region, region).map(|n| n.name)
}

/// A client of one region that knows only the region's name, as a Sentinel-aware Redis client
/// works: it asks the sentinels for the region's node, connects there, and asks again when its
/// connection breaks.
struct RegionClient {
    region: &'static str,
    sentinels: Vec<SocketAddr>,
    password: String,
    conn: Option<(tokio::net::TcpStream, SocketAddr)>,
}

impl RegionClient {
    fn new(region: &'static str, sentinels: Vec<SocketAddr>, password: &str) -> RegionClient {
        RegionClient {
            region,
            sentinels,
            password: password.to_string(),
            conn: None,
        }
    }

    /// Sends one command and reads its reply.
    async fn ask(
        stream: &mut tokio::net::TcpStream,
        args: &[&[u8]],
    ) -> anyhow::Result<resp::client::Value> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(&resp::client::encode_command(args))
            .await?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((value, _)) = resp::client::parse_value(&buf)? {
                return Ok(value);
            }
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "connection closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Connects to `addr` and logs in.
    async fn connect(&self, addr: SocketAddr) -> anyhow::Result<tokio::net::TcpStream> {
        let mut stream =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                .await??;
        let login = Self::ask(&mut stream, &[b"AUTH", self.password.as_bytes()]).await?;
        anyhow::ensure!(
            login == resp::client::Value::Simple("OK".into()),
            "login refused"
        );
        Ok(stream)
    }

    /// What the first sentinel that answers names for the region.
    async fn discover(&self) -> anyhow::Result<SocketAddr> {
        use resp::client::Value;
        for sentinel in &self.sentinels {
            let Ok(mut stream) = self.connect(*sentinel).await else {
                continue;
            };
            let asked = [
                &b"SENTINEL"[..],
                b"get-master-addr-by-name",
                self.region.as_bytes(),
            ];
            if let Ok(Value::Array(addr)) = Self::ask(&mut stream, &asked).await
                && let [Value::Bulk(Some(ip)), Value::Bulk(Some(port))] = addr.as_slice()
            {
                let addr = format!(
                    "{}:{}",
                    String::from_utf8_lossy(ip),
                    String::from_utf8_lossy(port)
                );
                return Ok(addr.parse()?);
            }
        }
        anyhow::bail!("no sentinel named a node for {}", self.region)
    }

    /// Runs one command where the sentinels say; a broken connection is dropped (the next call
    /// asks them again).
    async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<(resp::client::Value, SocketAddr)> {
        if self.conn.is_none() {
            let addr = self.discover().await?;
            self.conn = Some((self.connect(addr).await?, addr));
        }
        let (stream, addr) = self.conn.as_mut().expect("connected");
        let addr = *addr;
        match tokio::time::timeout(Duration::from_secs(2), Self::ask(stream, args)).await {
            Ok(Ok(reply)) => Ok((reply, addr)),
            _ => {
                self.conn = None;
                anyhow::bail!("the connection to {addr} broke")
            }
        }
    }
}

/// What each region shows of the set and the counter the workload merges.
async fn print_visits(nodes: &[Arc<Shared>]) -> anyhow::Result<()> {
    for n in nodes {
        println!(
            "   {:<3} SMEMBERS visited -> {}   GET visits -> {}",
            n.config.region,
            show(&run(n, &["SMEMBERS", "visited"]).await?),
            show(&run(n, &["GET", "visits"]).await?)
        );
    }
    Ok(())
}

/// What `INFO replication` shows of the node's peers.
fn print_lag(node: &Shared) {
    for m in node.cluster.view.borrow().members.iter() {
        println!(
            "   {} sees {} ({}): {}, link {}, lag {} ms, {} ops",
            node.config.region,
            m.info.name,
            m.info.region,
            m.state.name(),
            if m.link { "up" } else { "down" },
            m.lag_ms,
            m.lag_ops
        );
    }
}

async fn wait_down(node: &Shared, region: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    while node
        .cluster
        .view
        .borrow()
        .members
        .iter()
        .any(|m| m.info.region == region && (m.link || m.state == node::peer::MemberState::Up))
    {
        if started.elapsed() > PATIENCE {
            anyhow::bail!("{region} still looks up");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
