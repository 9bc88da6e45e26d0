//! Where each command's keys are among its arguments: what `COMMAND INFO` reports (first key,
//! last key, step, and whether the keys move with the arguments) and the keys of one call
//! (`COMMAND GETKEYS`). Most commands take keys at fixed places; the others find them from a
//! count of keys (`ZUNIONSTORE dest 2 a b`, `LMPOP 2 a b LEFT`) or a keyword (`SORT ... STORE`).

use super::Spec;
use bytes::Bytes;

/// How a command's keys are placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// No keys.
    None,
    /// From `first` to `last` (negative: counted from the end, -1 the last argument), every
    /// `step`-th argument.
    Range { first: i64, last: i64, step: i64 },
    /// A count of keys at `at`, the keys right after it; with a destination key at 1 first
    /// when `dest`.
    Counted { at: usize, dest: bool },
    /// The key at 1, and the one after a `STORE` keyword (`SORT`).
    Sort,
    /// The key after a subcommand (`MEMORY USAGE key`, `OBJECT ENCODING key`).
    Sub,
}

/// How `spec`'s keys are placed.
pub fn keys_of(spec: &Spec) -> Keys {
    let range = |first, last, step| Keys::Range { first, last, step };
    match spec.name {
        "keys" | "scan" | "dbsize" | "flushall" | "flushdb" | "randomkey" | "swapdb" => Keys::None,
        "mget" | "del" | "unlink" | "exists" | "touch" | "sinter" | "sunion" | "sdiff"
        | "sinterstore" | "sunionstore" | "sdiffstore" | "watch" => range(1, -1, 1),
        "mset" | "msetnx" => range(1, -1, 2),
        "rename" | "renamenx" | "copy" | "smove" | "lmove" | "rpoplpush" | "lcs" | "blmove"
        | "brpoplpush" | "zrangestore" => range(1, 2, 1),
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => range(1, -2, 1),
        "bitop" => range(2, -1, 1),
        "zunionstore" | "zinterstore" | "zdiffstore" => Keys::Counted { at: 2, dest: true },
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            Keys::Counted { at: 1, dest: false }
        }
        "blmpop" | "bzmpop" => Keys::Counted { at: 2, dest: false },
        "sort" | "sort_ro" => Keys::Sort,
        "memory" | "object" => Keys::Sub,
        _ if matches!(spec.runs, super::Runs::Connection) => Keys::None,
        _ => range(1, 1, 1),
    }
}

/// What `COMMAND INFO` reports: first key, last key, step, and whether the keys move with
/// the arguments (`movablekeys`). Commands that find their keys from a count or a keyword
/// report their fixed keys, as Redis does.
pub fn legacy(keys: Keys) -> (i64, i64, i64, bool) {
    match keys {
        Keys::None | Keys::Sub => (0, 0, 0, false),
        Keys::Range { first, last, step } => (first, last, step, false),
        Keys::Counted { dest: true, .. } | Keys::Sort => (1, 1, 1, true),
        Keys::Counted { dest: false, .. } => (0, 0, 0, true),
    }
}

/// Why a call's keys cannot be found (`COMMAND GETKEYS`' errors).
#[derive(Debug, PartialEq, Eq)]
pub enum NoKeys {
    /// The command takes no keys.
    None,
    /// The arguments do not say where the keys are (a bad count of keys).
    Invalid,
}

/// The positions of the keys in `args` (the command's name at 0), for a call whose arity
/// was checked.
pub fn positions(spec: &Spec, args: &[Bytes]) -> Result<Vec<usize>, NoKeys> {
    let n = args.len() as i64;
    let found = match keys_of(spec) {
        Keys::None => return Err(NoKeys::None),
        Keys::Range { first, last, step } => {
            let last = if last < 0 { n + last } else { last.min(n - 1) };
            (first..=last)
                .step_by(step as usize)
                .map(|i| i as usize)
                .collect()
        }
        Keys::Counted { at, dest } => {
            let count = args.get(at).and_then(|c| resp::args::parse_i64(c));
            let count = count
                .filter(|c| *c > 0 && at as i64 + c < n)
                .ok_or(NoKeys::Invalid)?;
            let mut keys: Vec<usize> = if dest { vec![1] } else { Vec::new() };
            keys.extend(at + 1..=at + count as usize);
            keys
        }
        Keys::Sort => {
            let mut keys = vec![1];
            let mut i = 2;
            while i < args.len() {
                let word = args[i].to_ascii_lowercase();
                match word.as_slice() {
                    b"limit" => i += 2,
                    b"get" | b"by" => i += 1,
                    b"store" if spec.name == "sort" && i + 1 < args.len() => {
                        keys.push(i + 1);
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            keys
        }
        Keys::Sub => {
            let sub = args.get(1).map(|s| s.to_ascii_lowercase());
            let keyed = matches!(
                sub.as_deref(),
                Some(b"usage" | b"encoding" | b"freq" | b"idletime" | b"refcount")
            );
            match args.get(2) {
                Some(_) if keyed => vec![2],
                _ => return Err(NoKeys::None),
            }
        }
    };
    if found.is_empty() {
        return Err(NoKeys::None);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(words: &str) -> Result<Vec<String>, NoKeys> {
        let args: Vec<Bytes> = words
            .split(' ')
            .map(|w| Bytes::from(w.to_string()))
            .collect();
        let spec = crate::cmd::lookup(&args[0]).expect("known");
        let at = positions(spec, &args)?;
        Ok(at
            .iter()
            .map(|&i| String::from_utf8_lossy(&args[i]).into_owned())
            .collect())
    }

    #[test]
    fn fixed_keys() {
        assert_eq!(keys("get k").unwrap(), ["k"]);
        assert_eq!(keys("mset a 1 b 2").unwrap(), ["a", "b"]);
        assert_eq!(keys("lmove a b left right").unwrap(), ["a", "b"]);
        assert_eq!(keys("blpop a b 0").unwrap(), ["a", "b"]);
        assert_eq!(keys("bitop and d a b").unwrap(), ["d", "a", "b"]);
        assert_eq!(keys("ping"), Err(NoKeys::None));
    }

    #[test]
    fn counted_and_keyword_keys() {
        assert_eq!(
            keys("zunionstore d 2 a b weights 1 2").unwrap(),
            ["d", "a", "b"]
        );
        assert_eq!(keys("lmpop 2 a b left").unwrap(), ["a", "b"]);
        assert_eq!(keys("bzmpop 0 1 a min").unwrap(), ["a"]);
        assert_eq!(keys("zunionstore d 3 a b"), Err(NoKeys::Invalid));
        assert_eq!(keys("zunion 0 a"), Err(NoKeys::Invalid));
        assert_eq!(keys("sort k by w get # store d").unwrap(), ["k", "d"]);
        assert_eq!(keys("sort k limit 0 store").unwrap(), ["k"]);
        assert_eq!(keys("sort_ro k").unwrap(), ["k"]);
        assert_eq!(keys("memory usage k").unwrap(), ["k"]);
        assert_eq!(keys("memory doctor"), Err(NoKeys::None));
    }
}
