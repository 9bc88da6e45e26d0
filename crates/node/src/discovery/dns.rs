//! The authoritative DNS server of discovery (`--dns-addr`, `--dns-zone`): names that resolve
//! to the nodes clients should use, from the same picture as the sentinel answers.
//!
//! In the zone (say `db.example.`):
//! - `db.example.`: the ready nodes of the region nearest to the asking client: the region of
//!   its address (or of the EDNS Client Subnet a resolver sends on its behalf) in the subnet
//!   table (`--dns-subnet 10.1.0.0/16=eu`), this node's region when none matches;
//! - `<region>.db.example.`: the ready nodes of that region, or of the nearest region with one;
//! - `_redis._tcp.db.example.` and `_redis._tcp.<region>.db.example.`: the same as SRV records
//!   (port, weight by capacity), targets `<node>.node.db.example.`, with their addresses;
//! - `<node>.node.db.example.`: that node, ready or not, while it is linked (its address is
//!   what it said over the link).
//!
//! A, AAAA, SRV, SOA and ANY are answered, every record with a TTL of [`TTL`] seconds, so a
//! client re-resolving after a failure gets the new answer within the TTL. Names outside the
//! zone are refused (no recursion); unknown names in it get NXDOMAIN, other types no data, both
//! with the SOA. UDP only; a reply that does not fit is truncated (TC). Messages that do not
//! parse get FORMERR (or nothing, when not even the header parses) and are counted.

use super::Picture;
use crate::Shared;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Seconds every answer may be cached: a failover reaches DNS-only clients within it.
pub const TTL: u32 = 5;
/// Largest UDP reply to a client that sent no EDNS (RFC 1035).
const PLAIN_UDP_MAX: usize = 512;
/// Largest UDP reply with EDNS (the DNS flag day's safe size).
const EDNS_UDP_MAX: u16 = 1232;

/// The zone and how client addresses map to regions.
pub struct Zone {
    apex: Name,
    subnets: Vec<(ipnet::IpNet, String)>,
}

impl Zone {
    /// The zone `apex` (a domain name; made absolute) with a subnet table of `cidr=region`.
    pub fn new(apex: &str, subnets: &[(String, String)]) -> Result<Zone, String> {
        let mut apex = Name::from_ascii(apex)
            .map_err(|e| format!("--dns-zone {apex:?} is not a domain name: {e}"))?
            .to_lowercase();
        apex.set_fqdn(true);
        let subnets = (subnets.iter())
            .map(|(cidr, region)| {
                let net = cidr.parse::<ipnet::IpNet>().map_err(|e| {
                    format!("--dns-subnet {cidr:?}: not an address range (10.1.0.0/16): {e}")
                })?;
                Ok((net.trunc(), region.clone()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Zone { apex, subnets })
    }

    /// The region of a client at `ip`: the longest matching range of the table.
    fn region_of(&self, ip: IpAddr) -> Option<&str> {
        (self.subnets.iter())
            .filter(|(net, _)| net.contains(&ip))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, region)| region.as_str())
    }
}

/// Answers queries on `socket` until `stop` turns true.
pub async fn serve(
    socket: UdpSocket,
    zone: Zone,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (len, from) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "dns receive failed");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let picture = Picture::of(&shared);
        if let Some(reply) = answer(&zone, &picture, &shared.config.region, &buf[..len], from) {
            let _ = socket.send_to(&reply, from).await;
        }
    }
}

/// Where a name points.
enum Target {
    /// The ready nodes for a region (A, AAAA).
    Region(String),
    /// The same as SRV records.
    Service(String),
    /// One node by name.
    Node(String),
    /// The zone's apex asked for what only it has (SOA).
    Apex,
}

/// The reply to one datagram from `from`, or none when it is not a DNS message at all.
pub fn answer(
    zone: &Zone,
    picture: &Picture,
    my_region: &str,
    packet: &[u8],
    from: SocketAddr,
) -> Option<Vec<u8>> {
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => {
            count("malformed");
            // The id and opcode are readable as long as the header is there.
            if packet.len() < 12 {
                return None;
            }
            let id = u16::from_be_bytes([packet[0], packet[1]]);
            let op = OpCode::from_u8((packet[2] >> 3) & 0x0f);
            return Message::error_msg(id, op, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    let meta = request.metadata;
    if meta.message_type != MessageType::Query {
        return None; // never answer an answer
    }
    let mut response = Message::response(meta.id, meta.op_code);
    response.metadata.recursion_desired = meta.recursion_desired;
    if meta.op_code != OpCode::Query {
        count("not_implemented");
        response.metadata.response_code = ResponseCode::NotImp;
        return response.to_vec().ok();
    }
    let [query] = request.queries.as_slice() else {
        count("malformed");
        response.metadata.response_code = ResponseCode::FormErr;
        return response.to_vec().ok();
    };
    response.add_query(query.clone());
    let subnet = (request.edns.as_ref())
        .and_then(|e| e.option(EdnsCode::Subnet))
        .and_then(|o| match o {
            EdnsOption::Subnet(s) => Some(*s),
            _ => None,
        });
    let limit = match &request.edns {
        Some(edns) => {
            let mut mine = Edns::new();
            mine.set_max_payload(EDNS_UDP_MAX);
            if let Some(s) = &subnet {
                // The answer holds for the whole range the resolver sent.
                let echoed = ClientSubnet::new(s.addr(), s.source_prefix(), s.source_prefix());
                mine.options_mut().insert(EdnsOption::Subnet(echoed));
            }
            response.set_edns(mine);
            usize::from(edns.max_payload().clamp(512, EDNS_UDP_MAX))
        }
        None => PLAIN_UDP_MAX,
    };
    let name = query.name().to_lowercase();
    if !zone.apex.zone_of(&name) {
        count("refused");
        response.metadata.response_code = ResponseCode::Refused;
        return response.to_vec().ok();
    }
    response.metadata.authoritative = true;
    let client = subnet.map_or(from.ip(), |s| s.addr());
    let nearest = || zone.region_of(client).unwrap_or(my_region).to_string();
    let depth = usize::from(name.num_labels() - zone.apex.num_labels());
    let labels: Vec<String> = (name.iter().take(depth))
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let target = match labels.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => Some(Target::Apex),
        [region] if picture.regions().contains(region) => Some(Target::Region(region.into())),
        ["_redis", "_tcp"] => Some(Target::Service(nearest())),
        ["_redis", "_tcp", region] if picture.regions().contains(region) => {
            Some(Target::Service(region.into()))
        }
        [node, "node"] if picture.node(node).is_some() => Some(Target::Node(node.into())),
        _ => None,
    };
    let soa = Record::from_rdata(zone.apex.clone(), TTL, RData::SOA(soa(&zone.apex)));
    let Some(target) = target else {
        count("nxdomain");
        response.metadata.response_code = ResponseCode::NXDomain;
        response.add_authority(soa);
        return encode(response, limit);
    };
    let qtype = query.query_type();
    let addresses = |nodes: &[super::Named], name: &Name| -> Vec<Record> {
        (nodes.iter())
            .filter_map(|n| address(name, n.addr.ip(), qtype))
            .collect()
    };
    let answers: Vec<Record> = match target {
        Target::Apex if qtype == RecordType::SOA => vec![soa.clone()],
        Target::Apex => addresses(&picture.ready_nodes(&nearest()), &name),
        Target::Region(region) => addresses(&picture.ready_nodes(&region), &name),
        Target::Node(node) => addresses(picture.node(&node).as_slice(), &name),
        Target::Service(region) if matches!(qtype, RecordType::SRV | RecordType::ANY) => {
            let nodes = picture.ready_nodes(&region);
            for n in &nodes {
                let target = node_name(&zone.apex, &n.name);
                if let Some(target) = target {
                    for t in [RecordType::A, RecordType::AAAA] {
                        response.add_additionals(address(&target, n.addr.ip(), t));
                    }
                }
            }
            (nodes.iter())
                .filter_map(|n| {
                    let target = node_name(&zone.apex, &n.name)?;
                    let weight = u16::try_from(n.capacity).unwrap_or(u16::MAX);
                    let srv = SRV::new(0, weight, n.addr.port(), target);
                    Some(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)))
                })
                .collect()
        }
        Target::Service(_) => Vec::new(),
    };
    if answers.is_empty() {
        count("no_data");
        response.add_authority(soa);
    } else {
        count("answered");
    }
    response.add_answers(answers);
    encode(response, limit)
}

/// `ip` as a record of type `qtype` (A for v4, AAAA for v6, either for ANY), if it is one.
fn address(name: &Name, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    let rdata = match (ip, qtype) {
        (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => RData::A(A(v4)),
        (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => RData::AAAA(AAAA(v6)),
        _ => return None,
    };
    Some(Record::from_rdata(name.clone(), TTL, rdata))
}

/// `<node>.node.<apex>`, when the node's name is a DNS label.
fn node_name(apex: &Name, node: &str) -> Option<Name> {
    Name::from_ascii(format!("{node}.node"))
        .ok()?
        .append_domain(apex)
        .ok()
}

/// The zone's SOA: this node is its primary; serial 1 (answers change with health, not
/// with zone transfers, which are not served); negative answers cached for the TTL.
fn soa(apex: &Name) -> SOA {
    let host = |label: &str| {
        Name::from_ascii(label)
            .ok()
            .and_then(|n| n.append_domain(apex).ok())
            .unwrap_or_else(|| apex.clone())
    };
    SOA::new(host("ns"), host("hostmaster"), 1, 60, 30, 3600, TTL)
}

/// The encoded reply, truncated (TC, no records) when it does not fit in `limit` bytes.
fn encode(response: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
}

fn count(result: &'static str) {
    metrics::counter!("meridian_dns_queries_total", "result" => result).increment(1);
}
