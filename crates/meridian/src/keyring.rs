//! `meridian keyring`: the gossip keyring file of a node (`--gossip-keyring`).
//!
//! One key per line, 64 hex digits; the first encrypts what the node sends, every key is
//! accepted. Rotation with no downtime, node by node, sending SIGHUP after each change:
//! 1. `install <new>` on every node (accepted everywhere, used nowhere yet);
//! 2. `use <new>` on every node (each node now sends under it; the old key is still accepted
//!    from nodes not yet switched);
//! 3. `remove <old>` on every node.

use anyhow::{Context, bail};
use clap::Subcommand;
use membership::{KEY_BYTES, format_key, key_id, parse_key, parse_keyring};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `meridian keyring ...`.
#[derive(Subcommand, Debug)]
pub enum KeyringCommand {
    /// Print a new random key.
    Generate,
    /// Show the keys of a keyring file by id, the one in use first.
    List {
        /// The keyring file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Add a key to the ring (accepted, not used), creating the file if needed.
    Install {
        /// The key (64 hex digits).
        key: String,
        /// The keyring file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Encrypt with this key (it moves first; it must be installed).
    Use {
        /// The key, or its id as `list` shows it.
        key: String,
        /// The keyring file.
        #[arg(long)]
        file: PathBuf,
    },
    /// Remove a key that is not in use.
    Remove {
        /// The key, or its id as `list` shows it.
        key: String,
        /// The keyring file.
        #[arg(long)]
        file: PathBuf,
    },
}

/// Runs one `meridian keyring` command.
pub fn run(command: KeyringCommand) -> anyhow::Result<()> {
    match command {
        KeyringCommand::Generate => println!("{}", format_key(&generate()?)),
        KeyringCommand::List { file } => {
            for (i, key) in read(&file)?.iter().enumerate() {
                let role = if i == 0 { "in use" } else { "accepted" };
                println!("{}  {role}", key_id(key));
            }
        }
        KeyringCommand::Install { key, file } => {
            let key = parse_key(&key).map_err(anyhow::Error::msg)?;
            let mut keys = if file.exists() {
                read(&file)?
            } else {
                Vec::new()
            };
            if keys.contains(&key) {
                bail!("key {} is already installed", key_id(&key));
            }
            keys.push(key);
            write(&file, &keys)?;
            println!("installed {}; send SIGHUP to the node", key_id(&key));
        }
        KeyringCommand::Use { key, file } => {
            let mut keys = read(&file)?;
            let i = find(&keys, &key)?;
            let chosen = keys.remove(i);
            keys.insert(0, chosen);
            write(&file, &keys)?;
            println!("using {}; send SIGHUP to the node", key_id(&chosen));
        }
        KeyringCommand::Remove { key, file } => {
            let mut keys = read(&file)?;
            let i = find(&keys, &key)?;
            if i == 0 {
                bail!(
                    "key {} is in use: use another key on every node first",
                    key_id(&keys[0])
                );
            }
            let gone = keys.remove(i);
            write(&file, &keys)?;
            println!("removed {}; send SIGHUP to the node", key_id(&gone));
        }
    }
    Ok(())
}

fn generate() -> anyhow::Result<[u8; KEY_BYTES]> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(key)
}

fn read(file: &Path) -> anyhow::Result<Vec<[u8; KEY_BYTES]>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse_keyring(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The position of `key` (a key or a key's id) in `keys`.
fn find(keys: &[[u8; KEY_BYTES]], key: &str) -> anyhow::Result<usize> {
    let wanted = key.trim().to_ascii_lowercase();
    keys.iter()
        .position(|k| format_key(k) == wanted || key_id(k) == wanted)
        .with_context(|| format!("no key {wanted} in the ring"))
}

/// Writes `keys` to `file` through a new file renamed over it, mode 0600.
fn write(file: &Path, keys: &[[u8; KEY_BYTES]]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = file.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let mut text =
        String::from("# Meridian gossip keyring: the first key encrypts, all are accepted.\n");
    for key in keys {
        text += &format_key(key);
        text.push('\n');
    }
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_installs_uses_then_removes() {
        let dir = std::env::temp_dir().join(format!("meridian-keyring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("gossip.keys");
        let (old, new) = (format_key(&[1; 32]), format_key(&[2; 32]));
        let install = |key: &str| {
            run(KeyringCommand::Install {
                key: key.into(),
                file: file.clone(),
            })
        };
        install(&old).unwrap();
        install(&new).unwrap();
        assert!(install(&new).is_err(), "installed twice");
        assert_eq!(read(&file).unwrap(), vec![[1; 32], [2; 32]]);
        let remove = |key: &str| {
            run(KeyringCommand::Remove {
                key: key.into(),
                file: file.clone(),
            })
        };
        assert!(remove(&old).is_err(), "the key in use stays");
        run(KeyringCommand::Use {
            key: key_id(&[2; 32]),
            file: file.clone(),
        })
        .unwrap();
        assert_eq!(read(&file).unwrap(), vec![[2; 32], [1; 32]]);
        remove(&old).unwrap();
        assert_eq!(read(&file).unwrap(), vec![[2; 32]]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
