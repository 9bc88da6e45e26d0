//! A node's identity in the gossip layer.

use serde::{Deserialize, Serialize};

/// Who a node is, as peers learn it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// `--node-id`.
    pub name: String,
    /// `--region`.
    pub region: String,
    /// Where its peer listener is (TCP for replication, UDP for gossip, same port).
    pub peer_addr: String,
}

/// A node's SWIM identity: its info and a number that grows with every start and every
/// rejoin, so the newest identity of a name replaces the older ones everywhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Id {
    pub info: MemberInfo,
    pub bump: u64,
}

impl Id {
    /// The identity a datagram to a bare address is sent to: only its address is used.
    pub fn placeholder(addr: &str) -> Id {
        Id {
            info: MemberInfo {
                name: String::new(),
                region: String::new(),
                peer_addr: addr.to_string(),
            },
            bump: 0,
        }
    }
}

impl foca::Identity for Id {
    /// Identities at the same address are the same node (a seed is known only by its address).
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            info: self.info.clone(),
            bump: self.bump + 1,
        })
    }

    fn addr(&self) -> String {
        self.info.peer_addr.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // The later start (or rejoin) wins; the name breaks a tie the same way everywhere.
        (self.bump, &self.info.name) > (adversary.bump, &adversary.info.name)
    }
}
