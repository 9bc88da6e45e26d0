//! The pick behind discovery answers (sentinel's `get-master-addr-by-name`, DNS): which node a
//! client asking for a region should use. Every node computes it from the same view (the
//! members, their health, capacities and the region-to-region round trips), so every node
//! gives the same answer and clients that ask several do not flap.

/// A member as the pick sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// Its `--node-id`.
    pub name: String,
    /// Its region.
    pub region: String,
    /// Up by gossip, and caught up with its peers (a node coming back is not picked before).
    pub healthy: bool,
    /// Its `--capacity` label: a node of capacity 2 is picked for twice the keys of one of 1.
    pub capacity: u32,
}

/// The node for clients of `region`, keyed by `key` (the same key always gets the same node
/// while the view holds; sentinel answers use the region's name, so every client of a region
/// gets one node; DNS may use the client's subnet to spread them): a healthy node of the
/// region, by rendezvous hashing weighted by capacity; when the region has none, the healthy
/// node of the region nearest to it by `distance_ms` (ties: the smaller name); none when no
/// node is healthy.
pub fn pick<'a>(
    region: &str,
    key: &str,
    candidates: &'a [Candidate],
    distance_ms: impl Fn(&str, &str) -> Option<f64>,
) -> Option<&'a Candidate> {
    let healthy = || candidates.iter().filter(|c| c.healthy && c.capacity > 0);
    let local = healthy().filter(|c| c.region == region).max_by(|a, b| {
        score(key, a)
            .total_cmp(&score(key, b))
            .then_with(|| b.name.cmp(&a.name))
    });
    if local.is_some() {
        return local;
    }
    healthy().min_by(|a, b| {
        let d = |c: &Candidate| distance_ms(region, &c.region).unwrap_or(f64::INFINITY);
        d(a).total_cmp(&d(b)).then_with(|| a.name.cmp(&b.name))
    })
}

/// Weighted rendezvous score: `-capacity / ln(u)` with `u` in (0, 1) from a hash of the key
/// and the node's name (highest wins; a node's share is proportional to its capacity).
fn score(key: &str, c: &Candidate) -> f64 {
    let h = fnv1a(key.bytes().chain([0xff]).chain(c.name.bytes()));
    // 53 bits into (0, 1), never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(c.capacity) / u.ln()
}

fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    let h = bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    // A final mix, so that keys differing in the last byte spread over the whole range.
    let h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, region: &str, healthy: bool, capacity: u32) -> Candidate {
        Candidate {
            name: name.into(),
            region: region.into(),
            healthy,
            capacity,
        }
    }

    /// Round trips of the demo's regions.
    fn demo(a: &str, b: &str) -> Option<f64> {
        let ms = match (a.min(b), a.max(b)) {
            (x, y) if x == y => 0.0,
            ("eu", "us") => 80.0,
            ("ap", "us") => 150.0,
            ("ap", "eu") => 220.0,
            _ => return None,
        };
        Some(ms)
    }

    #[test]
    fn a_region_gets_its_own_healthy_node() {
        let view = [
            node("eu-1", "eu", true, 1),
            node("us-1", "us", true, 1),
            node("ap-1", "ap", true, 1),
        ];
        for region in ["eu", "us", "ap"] {
            assert_eq!(pick(region, region, &view, demo).unwrap().region, region);
        }
    }

    #[test]
    fn a_region_without_a_healthy_node_gets_the_nearest_region_and_none_when_none_is_up() {
        let view = [
            node("eu-1", "eu", false, 1),
            node("us-1", "us", true, 1),
            node("ap-1", "ap", true, 1),
        ];
        assert_eq!(pick("eu", "eu", &view, demo).unwrap().name, "us-1");
        let view = [
            node("eu-1", "eu", true, 1),
            node("us-1", "us", false, 1),
            node("ap-1", "ap", true, 1),
        ];
        assert_eq!(pick("us", "us", &view, demo).unwrap().name, "eu-1");
        let view = [
            node("eu-1", "eu", true, 1),
            node("us-1", "us", true, 1),
            node("ap-1", "ap", false, 1),
        ];
        assert_eq!(pick("ap", "ap", &view, demo).unwrap().name, "us-1");
        // Unknown distances come last; ties go to the smaller name.
        let view = [
            node("xx-1", "xx", true, 1),
            node("us-1", "us", true, 1),
            node("ap-1", "ap", false, 1),
        ];
        assert_eq!(pick("ap", "ap", &view, demo).unwrap().name, "us-1");
        let view = [node("b", "xx", true, 1), node("a", "yy", true, 1)];
        assert_eq!(pick("ap", "ap", &view, demo).unwrap().name, "a");
        let view = [node("eu-1", "eu", false, 1), node("us-1", "us", false, 1)];
        assert_eq!(pick("eu", "eu", &view, demo), None);
    }

    #[test]
    fn the_same_view_gives_the_same_answer_in_any_order() {
        let view = vec![
            node("eu-1", "eu", true, 1),
            node("eu-2", "eu", true, 1),
            node("eu-3", "eu", true, 1),
        ];
        let first = pick("eu", "eu", &view, demo).unwrap().name.clone();
        let mut reversed = view.clone();
        reversed.reverse();
        assert_eq!(pick("eu", "eu", &reversed, demo).unwrap().name, first);
        // The node picked going down moves its clients only: the others keep theirs.
        let keys: Vec<String> = (0..200).map(|i| format!("10.0.{i}.0/24")).collect();
        let before: Vec<String> = keys
            .iter()
            .map(|k| pick("eu", k, &view, demo).unwrap().name.clone())
            .collect();
        let mut down = view.clone();
        down[1].healthy = false;
        for (k, was) in keys.iter().zip(&before) {
            let now = &pick("eu", k, &down, demo).unwrap().name;
            if was != "eu-2" {
                assert_eq!(now, was, "{k} moved off a healthy node");
            }
        }
    }

    #[test]
    fn capacity_weights_the_share_of_keys() {
        let view = [node("big", "eu", true, 3), node("small", "eu", true, 1)];
        let big = (0..4000)
            .filter(|i| {
                pick("eu", &format!("client-{i}"), &view, demo)
                    .unwrap()
                    .name
                    == "big"
            })
            .count();
        // 3/4 of the keys, within sampling noise.
        assert!((2850..=3150).contains(&big), "big got {big} of 4000");
        let view = [node("off", "eu", true, 0), node("on", "us", true, 1)];
        assert_eq!(pick("eu", "eu", &view, demo).unwrap().name, "on");
    }
}
