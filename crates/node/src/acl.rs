//! Who a client is: the node's users and their passwords, the one place that decides whether
//! a client may log in (`AUTH`, `HELLO ... AUTH`) and whether it starts logged in.
//!
//! A node has the `default` user. Without `--requirepass` it has no password (`nopass`):
//! every client starts logged in as it, as with Redis, and protected mode then lets only
//! loopback clients connect (`server::connection`). With `--requirepass`, clients start
//! logged out and may run only `AUTH`, `HELLO`, `QUIT` and `RESET` until they log in.
//!
//! Passwords are kept as SHA-256 digests only and compared in constant time, as Redis keeps
//! them. (Users other than `default`, their rights, and their replication to every region
//! are the next part of issue 14; until then the default user may run everything.)

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

/// The name of the user a client is before it says otherwise.
pub const DEFAULT_USER: &str = "default";

/// Why a login was refused: Redis's text, the same whether the user is unknown, disabled or
/// the password wrong (so a client learns nothing of which users exist).
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// One user.
#[derive(Clone, Debug)]
pub struct User {
    enabled: bool,
    /// Logs in with any password.
    nopass: bool,
    /// SHA-256 digests of its passwords.
    passwords: BTreeSet<[u8; 32]>,
}

impl User {
    fn accepts(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        let given = sha256(password);
        // Every digest is compared, each in constant time: the time taken says nothing of
        // which one matched, or how much of one.
        let matched = (self.passwords.iter()).fold(false, |found, kept| found | same(kept, &given));
        self.nopass || matched
    }

    /// `ACL LIST`'s rules for it, as far as this node keeps any.
    fn rules(&self) -> String {
        let mut rules = vec![if self.enabled { "on" } else { "off" }.to_string()];
        if self.nopass {
            rules.push("nopass".into());
        }
        rules.extend(self.passwords.iter().map(|p| format!("#{}", hex(p))));
        rules.extend(["~*", "&*", "+@all"].map(String::from));
        rules.join(" ")
    }
}

/// The node's users.
pub struct Users(RwLock<BTreeMap<String, User>>);

impl Users {
    /// The users of a node started with `requirepass` (the default user's password), if any.
    pub fn new(requirepass: Option<&str>) -> Users {
        let default = User {
            enabled: true,
            nopass: requirepass.is_none(),
            passwords: requirepass.iter().map(|p| sha256(p.as_bytes())).collect(),
        };
        Users(RwLock::new(BTreeMap::from([(
            DEFAULT_USER.to_string(),
            default,
        )])))
    }

    /// Whether a new client starts logged in (as the default user): it is on, with no
    /// password. Protected mode looks at the same.
    pub fn open(&self) -> bool {
        let users = self.0.read().expect("not poisoned");
        users
            .get(DEFAULT_USER)
            .is_some_and(|u| u.enabled && u.nopass)
    }

    /// Checks a login; `Err` holds the reply.
    pub fn login(&self, user: &[u8], password: &[u8]) -> Result<(), &'static str> {
        let users = self.0.read().expect("not poisoned");
        let name = std::str::from_utf8(user).map_err(|_| WRONGPASS)?;
        match users.get(name) {
            Some(u) if u.accepts(password) => Ok(()),
            _ => Err(WRONGPASS),
        }
    }

    /// The names of the users, in order (`ACL USERS`).
    pub fn names(&self) -> Vec<String> {
        self.0
            .read()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// `ACL LIST`: a line of rules per user.
    pub fn list(&self) -> Vec<String> {
        let users = self.0.read().expect("not poisoned");
        (users.iter())
            .map(|(name, u)| format!("user {name} {}", u.rules()))
            .collect()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_password_everyone_is_the_default_user() {
        let users = Users::new(None);
        assert!(users.open());
        assert_eq!(users.login(b"default", b"anything"), Ok(()));
        assert_eq!(users.login(b"nobody", b"anything"), Err(WRONGPASS));
        assert_eq!(users.list(), ["user default on nopass ~* &* +@all"]);
    }

    #[test]
    fn requirepass_is_the_default_users_password_kept_as_a_digest() {
        let users = Users::new(Some("s3cret"));
        assert!(!users.open());
        assert_eq!(users.login(b"default", b"s3cret"), Ok(()));
        assert_eq!(users.login(b"default", b"s3cre"), Err(WRONGPASS));
        assert_eq!(users.login(b"default", b""), Err(WRONGPASS));
        assert_eq!(users.login(b"\xff", b"s3cret"), Err(WRONGPASS));
        let [line] = users.list().try_into().expect("one user");
        // The digest of "s3cret", never the password itself.
        assert!(!line.contains("s3cret"));
        assert!(line.starts_with("user default on #") && line.ends_with(" ~* &* +@all"));
        assert_eq!(line.split(' ').nth(3).map(str::len), Some(65));
    }

    #[test]
    fn comparison_is_equality() {
        let a = sha256(b"a");
        let mut b = a;
        assert!(same(&a, &b));
        b[31] ^= 1;
        assert!(!same(&a, &b));
    }
}
