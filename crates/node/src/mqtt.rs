//! Devices write readings over MQTT (`--mqtt-addr`; issue 16): an MQTT 3.1.1 and 5 listener
//! in the node, its packets read and written by rumqttc's codec (`mqttbytes`) under this
//! node's own tokio server. There is no broker here: a `PUBLISH` is a reading to store, not a
//! message to route.
//!
//! - `CONNECT` is checked against the node's users (`ACL`): a username and password, or none
//!   while the default user needs none. Clean sessions only (a session is never present).
//! - A topic names a series: `a/b/c` is the key `a:b:c`; `sensors/<group>/<device>/<metric>`
//!   also labels it `group`, `device` and `metric` when it is created (with
//!   `DUPLICATE_POLICY LAST`, so a message delivered twice stores one sample).
//! - A payload is a number (`21.5`, the reading now), a JSON object `{"ts": ms, "value": v}`
//!   (`ts` optional), or a JSON array of either. Anything else is refused: MQTT 5 answers a
//!   QoS 1 message with reason 0x99 (payload format invalid); on 3.1.1 the message is dropped,
//!   logged and counted (`meridian_mqtt_rejected_total`), and acknowledged so the device moves
//!   on.
//! - QoS 0 and 1. The `PUBACK` is sent once the readings are stored as the node's fsync policy
//!   stores any write (the engine's round returned). QoS 2 is refused (MQTT 5 advertises
//!   `maximum QoS 1`; a 3.1.1 client that sends one is disconnected).
//! - Bounds: packets of at most [`PACKET_BYTES_MAX`]; a connection silent for one and a half
//!   keep-alives (or [`KEEP_ALIVE_MAX`] when the client asks for none) is closed; the messages a
//!   connection has sent and not had acknowledged are at most one round of
//!   [`ROUND_MAX`] (the next are read once it is stored); at most [`CONNECTIONS_MAX`]
//!   connections.

use crate::Shared;
use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Largest packet accepted.
pub const PACKET_BYTES_MAX: usize = 256 << 10;
/// How long a client may stay silent when it asks for no keep-alive (or more than this).
pub const KEEP_ALIVE_MAX: Duration = Duration::from_secs(600);
/// How long a new connection has to send its `CONNECT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most messages stored in one round (and so unacknowledged at once per connection).
pub const ROUND_MAX: usize = 512;
/// Most readings one message may carry.
pub const READINGS_MAX: usize = 10_000;
/// Most connections at once.
pub const CONNECTIONS_MAX: usize = 10_000;

/// Accepts MQTT connections until `stop` changes.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    while let Some((socket, peer)) = crate::server::accept_next(&listener, &mut stop, "mqtt").await
    {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refused an mqtt client: connection limit reached");
            continue;
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            if let Err(why) = connection(socket, &shared, stop).await {
                tracing::debug!(%peer, why, "mqtt connection closed");
            }
            drop(slot);
        });
    }
}

/// Which MQTT a connection speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Version {
    V311,
    V5,
}

/// One packet of either version, as this server uses them.
enum Incoming {
    Connect {
        keep_alive: u16,
        login: Option<(String, String)>,
    },
    Publish {
        qos: u8,
        pkid: u16,
        topic: Bytes,
        payload: Bytes,
    },
    Subscribe(u16, usize),
    Unsubscribe(u16, usize),
    PingReq,
    Disconnect,
    /// Something a client does not send a server (acks of publishes it never got).
    Other,
}

/// The protocol level of a `CONNECT` at the front of `buf`, once it is all there.
fn connect_level(buf: &[u8]) -> Result<Option<u8>, &'static str> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] >> 4 != 1 {
        return Err("the first packet is not a CONNECT");
    }
    let (mut len, mut shift, mut at) = (0usize, 0, 1);
    loop {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err("a malformed length");
        }
    }
    if len > PACKET_BYTES_MAX {
        return Err("a CONNECT over the packet size limit");
    }
    if buf.len() < at + len {
        return Ok(None);
    }
    // Protocol name (length-prefixed "MQTT"), then the level.
    let name_len = usize::from(u16::from_be_bytes([
        *buf.get(at).ok_or("short")?,
        *buf.get(at + 1).ok_or("short")?,
    ]));
    buf.get(at + 2 + name_len)
        .copied()
        .map(Some)
        .ok_or("a CONNECT without a protocol level")
}

fn read_packet(version: Version, buf: &mut BytesMut) -> Result<Option<Incoming>, String> {
    match version {
        Version::V311 => match v4::Packet::read(buf, PACKET_BYTES_MAX) {
            Ok(p) => Ok(Some(match p {
                v4::Packet::Connect(c) => Incoming::Connect {
                    keep_alive: c.keep_alive,
                    login: c.login.map(|l| (l.username, l.password)),
                },
                v4::Packet::Publish(p) => Incoming::Publish {
                    qos: p.qos as u8,
                    pkid: p.pkid,
                    topic: Bytes::from(p.topic.into_bytes()),
                    payload: p.payload,
                },
                v4::Packet::Subscribe(s) => Incoming::Subscribe(s.pkid, s.filters.len()),
                v4::Packet::Unsubscribe(u) => Incoming::Unsubscribe(u.pkid, u.topics.len()),
                v4::Packet::PingReq => Incoming::PingReq,
                v4::Packet::Disconnect => Incoming::Disconnect,
                _ => Incoming::Other,
            })),
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
        // A DISCONNECT with reason 0 may leave its reason out (MQTT 5, 3.14.2.1), which the
        // codec does not take.
        Version::V5 if buf.starts_with(&[0xe0, 0x00]) => {
            let _ = buf.split_to(2);
            Ok(Some(Incoming::Disconnect))
        }
        Version::V5 => match v5::Packet::read(buf, Some(PACKET_BYTES_MAX as u32)) {
            Ok(p) => Ok(Some(match p {
                v5::Packet::Connect(c, _, login) => Incoming::Connect {
                    keep_alive: c.keep_alive,
                    login: login.map(|l| (l.username, l.password)),
                },
                v5::Packet::Publish(p) => Incoming::Publish {
                    qos: p.qos as u8,
                    pkid: p.pkid,
                    topic: p.topic,
                    payload: p.payload,
                },
                v5::Packet::Subscribe(s) => Incoming::Subscribe(s.pkid, s.filters.len()),
                v5::Packet::Unsubscribe(u) => Incoming::Unsubscribe(u.pkid, u.filters.len()),
                v5::Packet::PingReq(_) => Incoming::PingReq,
                v5::Packet::Disconnect(_) => Incoming::Disconnect,
                _ => Incoming::Other,
            })),
            Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// What happened to one message, for its acknowledgement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Stored,
    BadPayload,
    BadTopic,
    NotAuthorized,
    Failed,
}

fn write_ack(version: Version, pkid: u16, outcome: Outcome, out: &mut BytesMut) {
    match version {
        // 3.1.1 has no way to refuse a message: it is acknowledged (and counted) whatever.
        Version::V311 => {
            let _ = v4::Packet::PubAck(v4::PubAck::new(pkid)).write(out, PACKET_BYTES_MAX);
        }
        Version::V5 => {
            let mut ack = v5::PubAck::new(pkid, None);
            ack.reason = match outcome {
                Outcome::Stored => v5::PubAckReason::Success,
                Outcome::BadPayload => v5::PubAckReason::PayloadFormatInvalid,
                Outcome::BadTopic => v5::PubAckReason::TopicNameInvalid,
                Outcome::NotAuthorized => v5::PubAckReason::NotAuthorized,
                Outcome::Failed => v5::PubAckReason::ImplementationSpecificError,
            };
            let _ = v5::Packet::PubAck(ack).write(out, None);
        }
    }
}

async fn connection(
    mut socket: TcpStream,
    shared: &Shared,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(4096);
    // The CONNECT, and from its level the version the connection speaks.
    let version = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            if let Some(level) = connect_level(&buf)? {
                return match level {
                    3 | 4 => Ok(Version::V311),
                    5 => Ok(Version::V5),
                    _ => Err("an unsupported protocol level"),
                };
            }
            if socket.read_buf(&mut buf).await.map_err(|_| "read failed")? == 0 {
                return Err("closed before CONNECT");
            }
        }
    })
    .await
    .map_err(|_| "no CONNECT in time".to_string())??;
    let Some(Incoming::Connect { keep_alive, login }) = read_packet(version, &mut buf)? else {
        return Err("the first packet is not a CONNECT".into());
    };
    let user = match &login {
        Some((name, password)) => (shared.users)
            .login(name.as_bytes(), password.as_bytes())
            .ok()
            .map(|()| name.clone()),
        None if shared.users.open() => Some(crate::acl::DEFAULT_USER.to_string()),
        None => None,
    };
    let mut out = BytesMut::new();
    let refused = user.is_none();
    match version {
        Version::V311 => {
            let code = match refused {
                false => v4::ConnectReturnCode::Success,
                true if login.is_none() => v4::ConnectReturnCode::NotAuthorized,
                true => v4::ConnectReturnCode::BadUserNamePassword,
            };
            let _ = v4::Packet::ConnAck(v4::ConnAck::new(code, false)).write(&mut out, 64);
        }
        Version::V5 => {
            let code = match refused {
                false => v5::ConnectReturnCode::Success,
                true if login.is_none() => v5::ConnectReturnCode::NotAuthorized,
                true => v5::ConnectReturnCode::BadUserNamePassword,
            };
            let properties = v5::ConnAckProperties {
                session_expiry_interval: None,
                receive_max: Some(ROUND_MAX as u16),
                max_qos: Some(1),
                retain_available: Some(0),
                max_packet_size: Some(PACKET_BYTES_MAX as u32),
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: Some(0),
                subscription_identifiers_available: Some(0),
                shared_subscription_available: Some(0),
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            };
            let ack = v5::ConnAck {
                session_present: false,
                code,
                properties: Some(properties),
            };
            let _ = v5::Packet::ConnAck(ack).write(&mut out, None);
        }
    }
    // A client may send its messages (and DISCONNECT) before the CONNACK reaches it, and be
    // gone by the time it is written: what it sent is stored all the same.
    let _ = socket.write_all(&out).await;
    let Some(user): Option<String> = user else {
        metrics::counter!("meridian_mqtt_connects_total", "result" => "refused").increment(1);
        return Err("refused the login".into());
    };
    metrics::counter!("meridian_mqtt_connects_total", "result" => "ok").increment(1);
    let silence = match keep_alive {
        0 => KEEP_ALIVE_MAX,
        s => (Duration::from_secs(u64::from(s)) * 3 / 2).min(KEEP_ALIVE_MAX),
    };
    loop {
        // Every complete packet read so far, up to a round of messages.
        let mut publishes = Vec::new();
        let mut fatal = None;
        out.clear();
        loop {
            if publishes.len() == ROUND_MAX {
                break;
            }
            let packet = match read_packet(version, &mut buf) {
                Ok(p) => p,
                Err(e) => {
                    // What came before the bad packet is stored; then the connection closes.
                    fatal = Some(e);
                    break;
                }
            };
            match packet {
                None => break,
                Some(Incoming::Publish {
                    qos,
                    pkid,
                    topic,
                    payload,
                }) => {
                    if qos > 1 {
                        return Err("QoS 2 is not supported".into());
                    }
                    publishes.push((qos, pkid, topic, payload));
                }
                Some(Incoming::PingReq) => match version {
                    Version::V311 => {
                        let _ = v4::Packet::PingResp.write(&mut out, 8);
                    }
                    Version::V5 => {
                        let _ = v5::Packet::PingResp(v5::PingResp).write(&mut out, None);
                    }
                },
                // Nothing is routed here: every subscription is refused.
                Some(Incoming::Subscribe(pkid, n)) => match version {
                    Version::V311 => {
                        let codes = vec![v4::SubscribeReasonCode::Failure; n];
                        let _ = v4::Packet::SubAck(v4::SubAck::new(pkid, codes))
                            .write(&mut out, PACKET_BYTES_MAX);
                    }
                    Version::V5 => {
                        let codes = vec![v5::SubscribeReasonCode::ImplementationSpecific; n];
                        let ack = v5::SubAck {
                            pkid,
                            return_codes: codes,
                            properties: None,
                        };
                        let _ = v5::Packet::SubAck(ack).write(&mut out, None);
                    }
                },
                Some(Incoming::Unsubscribe(pkid, n)) => match version {
                    Version::V311 => {
                        let _ = v4::Packet::UnsubAck(v4::UnsubAck::new(pkid))
                            .write(&mut out, PACKET_BYTES_MAX);
                    }
                    Version::V5 => {
                        let reasons = vec![v5::UnsubAckReason::NoSubscriptionExisted; n];
                        let ack = v5::UnsubAck {
                            pkid,
                            reasons,
                            properties: None,
                        };
                        let _ = v5::Packet::UnsubAck(ack).write(&mut out, None);
                    }
                },
                Some(Incoming::Disconnect) => {
                    store(shared, &user, version, publishes, &mut out).await;
                    let _ = socket.write_all(&out).await;
                    return Ok(());
                }
                Some(Incoming::Connect { .. }) => return Err("a second CONNECT".into()),
                Some(Incoming::Other) => {}
            }
        }
        if !publishes.is_empty() {
            store(shared, &user, version, publishes, &mut out).await;
        }
        if !out.is_empty() && socket.write_all(&out).await.is_err() && buf.is_empty() {
            return Err("the client went away".into());
        }
        if let Some(e) = fatal {
            return Err(e);
        }
        if !buf.is_empty() && read_packet_ready(version, &buf) {
            continue; // a round's worth was left in the buffer
        }
        if buf.is_empty() && buf.capacity() > 4 * crate::server::READ_CHUNK {
            buf = BytesMut::with_capacity(crate::server::READ_CHUNK); // a read-ahead's growth
        }
        buf.reserve(crate::server::READ_CHUNK);
        let spare = buf.capacity() - buf.len();
        let read = tokio::select! {
            r = tokio::time::timeout(silence, socket.read_buf(&mut buf)) => r,
            _ = stop.changed() => return Ok(()),
        };
        match read {
            Err(_) => return Err("keep-alive expired".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(0)) => return Ok(()),
            // Messages the device has already sent join this round (as on the data port).
            Ok(Ok(n)) if n == spare => (crate::server::read_ahead(&mut socket, &mut buf).await)
                .map_err(|e| e.to_string())?,
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether `buf` holds a whole packet (so the loop goes on without reading).
fn read_packet_ready(version: Version, buf: &BytesMut) -> bool {
    match version {
        Version::V311 => rumqttc::mqttbytes::check(buf.iter(), PACKET_BYTES_MAX).is_ok(),
        Version::V5 => v5::check(buf.iter(), Some(PACKET_BYTES_MAX as u32)).is_ok(),
    }
}

/// Stores the readings of `publishes` in one round and writes their acknowledgements.
async fn store(
    shared: &Shared,
    user: &str,
    version: Version,
    publishes: Vec<(u8, u16, Bytes, Bytes)>,
    out: &mut BytesMut,
) {
    let now_ms = crate::engine::wall_ms();
    let mut commands = Vec::new();
    // Per message: its outcome so far and the commands it stores.
    let mut plan = Vec::with_capacity(publishes.len());
    for (qos, pkid, topic, payload) in &publishes {
        let outcome = match (series_of(topic), readings(payload, now_ms)) {
            (None, _) => Err(Outcome::BadTopic),
            (_, Err(())) => Err(Outcome::BadPayload),
            (Some((key, labels)), Ok(readings)) => {
                let mine = store_readings(&key, &readings, &labels);
                let (spec, args) = &mine[0]; // speaks for them all (see store_readings)
                if shared.users.check(user, spec, args).is_ok() {
                    let first = commands.len();
                    commands.extend(mine);
                    Ok(first..commands.len())
                } else {
                    Err(Outcome::NotAuthorized)
                }
            }
        };
        if let Err(why) = outcome {
            let topic = String::from_utf8_lossy(topic);
            tracing::info!(%topic, ?why, "mqtt message refused");
            metrics::counter!("meridian_mqtt_rejected_total").increment(1);
        }
        plan.push((*qos, *pkid, outcome));
    }
    let replies = match commands.is_empty() {
        true => Vec::new(),
        false => match shared.engine.run(commands).await {
            Ok(ran) => ran.replies,
            Err(_) => Vec::new(),
        },
    };
    let mut stored = 0u64;
    for (qos, pkid, outcome) in plan {
        let outcome = match outcome {
            Ok(range) => {
                let ok =
                    (replies.get(range.clone())).is_some_and(|r| r.iter().all(|r| !r.is_error()));
                if ok {
                    stored += range.len() as u64;
                    Outcome::Stored
                } else {
                    tracing::info!(pkid, "mqtt readings not stored");
                    Outcome::Failed
                }
            }
            Err(o) => o,
        };
        if qos == 1 {
            write_ack(version, pkid, outcome, out);
        }
    }
    metrics::counter!("meridian_mqtt_samples_total").increment(stored);
}

/// The commands that store a device's readings (over MQTT or HTTP) in the series `key`, one
/// `TS.ADD ... ON_DUPLICATE LAST` each: a reading delivered twice stores one sample. The first
/// also names `labels` (`LABELS` arguments), with which it creates the series if absent; the
/// others run after it in the same round and find it there. They differ only in timestamp and
/// value, so the user's right to run the first is the right to run them all.
pub(crate) fn store_readings(
    key: &Bytes,
    readings: &[(u64, f64)],
    labels: &[Bytes],
) -> Vec<crate::engine::Command> {
    let spec = crate::cmd::lookup(b"ts.add").expect("known");
    let mut out = Vec::with_capacity(readings.len());
    for (i, &(ts, value)) in readings.iter().enumerate() {
        let mut args: Vec<Bytes> = Vec::with_capacity(7 + labels.len());
        args.extend([
            Bytes::from_static(b"TS.ADD"),
            key.clone(),
            Bytes::from(ts.to_string()),
            Bytes::from(value.to_string()),
            Bytes::from_static(b"ON_DUPLICATE"),
            Bytes::from_static(b"LAST"),
        ]);
        if i == 0 && !labels.is_empty() {
            args.push(Bytes::from_static(b"LABELS"));
            args.extend(labels.iter().cloned());
        }
        out.push((spec, args));
    }
    out
}

/// The series a topic names: its key and, for `sensors/<group>/<device>/<metric>`, its labels
/// (as `LABELS` arguments). `None` for a topic that names none (empty levels, wildcards).
fn series_of(topic: &[u8]) -> Option<(Bytes, Vec<Bytes>)> {
    let topic = std::str::from_utf8(topic).ok()?;
    let levels: Vec<&str> = topic.split('/').collect();
    let bad = |l: &&str| l.is_empty() || l.contains(['+', '#', ' ', '(', ')', ',', '=']);
    if levels.iter().any(bad) || topic.starts_with('$') {
        return None;
    }
    let key = Bytes::from(levels.join(":"));
    let labels = match levels.as_slice() {
        ["sensors", group, device, metric] => {
            [("group", *group), ("device", *device), ("metric", *metric)]
                .iter()
                .flat_map(|(n, v)| [Bytes::from(n.to_string()), Bytes::from(v.to_string())])
                .collect()
        }
        _ => Vec::new(),
    };
    Some((key, labels))
}

/// The readings of a payload: a number (now), `{"ts": ms, "value": v}` (`ts` optional), or an
/// array of either (at least one, at most [`READINGS_MAX`]).
pub(crate) fn readings(payload: &[u8], now_ms: u64) -> Result<Vec<(u64, f64)>, ()> {
    let text = std::str::from_utf8(payload).map_err(|_| ())?.trim();
    if let Some(v) = resp::args::parse_f64(text.as_bytes()).filter(|v| v.is_finite()) {
        return Ok(vec![(now_ms, v)]);
    }
    // Parsed straight into readings, not through `serde_json::Value` (a map per reading:
    // it showed in the profile of MQTT ingest).
    let items: Vec<Item> = match text.starts_with('[') {
        true => serde_json::from_str(text).map_err(|_| ())?,
        false => vec![serde_json::from_str(text).map_err(|_| ())?],
    };
    if items.is_empty() || items.len() > READINGS_MAX {
        return Err(());
    }
    (items.into_iter())
        .map(|Item(ts, value)| {
            let ts = ts.unwrap_or(now_ms);
            (value.is_finite() && ts <= i64::MAX as u64)
                .then_some((ts, value))
                .ok_or(())
        })
        .collect()
}

/// One reading of a JSON payload: a number, or an object with `value` and perhaps `ts`
/// (other fields are ignored).
struct Item(Option<u64>, f64);

impl<'de> serde::Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Item, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Field {
            Ts,
            Value,
            #[serde(other)]
            Other,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or {\"ts\": ms, \"value\": v}")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Item, E> {
                Ok(Item(None, v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Item, E> {
                Ok(Item(None, v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Item, E> {
                Ok(Item(None, v as f64))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let (mut ts, mut value) = (None, None);
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Ts => ts = Some(map.next_value::<u64>()?),
                        Field::Value => value = Some(map.next_value::<f64>()?),
                        Field::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let value = value.ok_or_else(|| serde::de::Error::missing_field("value"))?;
                Ok(Item(ts, value))
            }
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_series_and_sensor_topics_label_them() {
        let (key, labels) = series_of(b"sensors/plant/dev7/temp").unwrap();
        assert_eq!(key, "sensors:plant:dev7:temp");
        assert_eq!(
            labels,
            ["group", "plant", "device", "dev7", "metric", "temp"].map(Bytes::from)
        );
        assert_eq!(
            series_of(b"home/kitchen").unwrap(),
            ("home:kitchen".into(), vec![])
        );
        for bad in ["", "a//b", "a/+/b", "a/#", "$SYS/x", "a/b c", "a/(b)"] {
            assert_eq!(series_of(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn payloads_are_numbers_objects_or_batches() {
        assert_eq!(readings(b"21.5", 7), Ok(vec![(7, 21.5)]));
        assert_eq!(readings(b" -3 ", 7), Ok(vec![(7, -3.0)]));
        assert_eq!(
            readings(br#"{"ts": 5, "value": 1.5}"#, 7),
            Ok(vec![(5, 1.5)])
        );
        assert_eq!(readings(br#"{"value": 2}"#, 7), Ok(vec![(7, 2.0)]));
        assert_eq!(
            readings(br#"[{"ts": 1, "value": 1}, {"ts": 2, "value": 2}, 3]"#, 7),
            Ok(vec![(1, 1.0), (2, 2.0), (7, 3.0)])
        );
        // Fields other than ts and value are the device's business.
        assert_eq!(
            readings(br#"{"unit": "C", "ts": 9, "value": 4, "tags": [1]}"#, 7),
            Ok(vec![(9, 4.0)])
        );
        for bad in [
            &br#"{"ts": null, "value": 1}"#[..],
            br#"{"ts": 1.5, "value": 1}"#,
            b"[[1]]",
            b"true",
            &b"warm"[..],
            b"nan",
            b"inf",
            b"{}",
            br#"{"ts": -1, "value": 1}"#,
            br#"{"ts": 1, "value": "x"}"#,
            b"[]",
            br#"[1, "x"]"#,
            b"\xff",
        ] {
            assert_eq!(
                readings(bad, 7),
                Err(()),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_connect_level_is_read_once_the_packet_is_whole() {
        let mut out = BytesMut::new();
        v4::Packet::Connect(v4::Connect::new("dev"))
            .write(&mut out, 1024)
            .unwrap();
        assert_eq!(connect_level(&out), Ok(Some(4)));
        assert_eq!(connect_level(&out[..out.len() - 1]), Ok(None));
        assert!(connect_level(b"\x30\x00").is_err());
    }
}
