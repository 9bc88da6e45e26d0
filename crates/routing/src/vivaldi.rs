//! Vivaldi network coordinates: every round trip measured moves this node's coordinate a
//! little towards (or away from) where it should be relative to the peer's, weighted by how
//! sure each side is of its own place.

use serde::{Deserialize, Serialize};

/// Dimensions of the Euclidean part (Serf uses 8).
pub const DIMENSIONS: usize = 8;
/// How much of the estimated error a sample moves (`ce`).
const ERROR_GAIN: f64 = 0.25;
/// How far a sample moves the coordinate (`cc`).
const MOVE_GAIN: f64 = 0.25;
/// The error a new coordinate starts with (it knows nothing).
const MAX_ERROR: f64 = 1.5;
/// The least height, in ms.
const MIN_HEIGHT_MS: f64 = 0.01;

/// A node's place: a point in the space, plus a height (the delay of its own access link),
/// and how wrong it believes it is (relative error).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coordinate {
    /// The point, in ms.
    pub vec: [f64; DIMENSIONS],
    /// Added to every distance from this node, in ms.
    pub height: f64,
    /// Relative error of its predictions.
    pub error: f64,
}

impl Default for Coordinate {
    fn default() -> Coordinate {
        Coordinate {
            vec: [0.0; DIMENSIONS],
            height: MIN_HEIGHT_MS,
            error: MAX_ERROR,
        }
    }
}

impl Coordinate {
    /// The round trip this coordinate predicts to `other`, in ms.
    pub fn distance_ms(&self, other: &Coordinate) -> f64 {
        let d: f64 = (self.vec.iter().zip(&other.vec))
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        d + self.height + other.height
    }

    /// Whether every part is a finite number (a peer's coordinate is checked before use).
    pub fn is_sane(&self) -> bool {
        self.vec.iter().all(|x| x.is_finite())
            && self.height.is_finite()
            && self.error.is_finite()
            && self.height >= 0.0
            && self.error >= 0.0
    }

    /// Moves this coordinate for a round trip of `rtt_ms` measured to a node at `other`.
    /// `nudge` picks the direction when both stand on the same point (any fixed, distinct
    /// direction per pair will do: the runtime derives it from the names).
    pub fn update(&mut self, other: &Coordinate, rtt_ms: f64, nudge: [f64; DIMENSIONS]) {
        if !(rtt_ms.is_finite() && rtt_ms > 0.0 && other.is_sane()) {
            return;
        }
        let dist = self.distance_ms(other);
        let weight = self.error / (self.error + other.error).max(f64::EPSILON);
        let relative = (dist - rtt_ms).abs() / rtt_ms;
        self.error = (relative * ERROR_GAIN * weight + self.error * (1.0 - ERROR_GAIN * weight))
            .min(MAX_ERROR);
        let force = MOVE_GAIN * weight * (rtt_ms - dist);
        let mut unit: [f64; DIMENSIONS] = std::array::from_fn(|i| self.vec[i] - other.vec[i]);
        let mut norm = unit.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm < 1e-9 {
            unit = nudge;
            norm = unit
                .iter()
                .map(|x| x * x)
                .sum::<f64>()
                .sqrt()
                .max(f64::EPSILON);
        }
        for (v, u) in self.vec.iter_mut().zip(unit) {
            *v += u / norm * force;
        }
        if dist > 0.0 {
            self.height =
                ((self.height + other.height) * force / dist + self.height).max(MIN_HEIGHT_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nudge(i: usize) -> [f64; DIMENSIONS] {
        std::array::from_fn(|d| {
            if d == i % DIMENSIONS {
                1.0
            } else {
                0.1 * d as f64
            }
        })
    }

    /// Three regions with round trips eu-us 80, us-ap 150, eu-ap 220 ms (the demo's, doubled:
    /// they are not a metric space's exactly, as real ones are not): after rounds of samples
    /// between every pair, every prediction is within 15% of the truth.
    #[test]
    fn coordinates_converge_to_predict_the_round_trips() {
        let truth = [[0.0, 80.0, 220.0], [80.0, 0.0, 150.0], [220.0, 150.0, 0.0]];
        let mut coords = vec![Coordinate::default(); 3];
        for _ in 0..300 {
            for i in 0..3 {
                for j in 0..3 {
                    if i != j {
                        let other = coords[j].clone();
                        coords[i].update(&other, truth[i][j], nudge(i * 3 + j));
                    }
                }
            }
        }
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    let predicted = coords[i].distance_ms(&coords[j]);
                    let error = (predicted - truth[i][j]).abs() / truth[i][j];
                    assert!(
                        error < 0.15,
                        "{i}-{j}: predicted {predicted:.1}, truth {}",
                        truth[i][j]
                    );
                }
            }
            assert!(
                coords[i].error < 0.5,
                "{i} is sure of its place: {}",
                coords[i].error
            );
        }
    }

    /// A pair with no link is predicted from the others' measurements: four nodes on a line
    /// (0, 50, 100, 150 ms apart) measure every pair but a-c, which the others pin at 100.
    #[test]
    fn a_pair_without_a_link_is_predicted_from_the_others() {
        let at = [0.0, 50.0, 100.0, 150.0];
        let linked = |i: usize, j: usize| i != j && !matches!((i, j), (0, 2) | (2, 0));
        let mut coords = vec![Coordinate::default(); 4];
        for round in 0..600 {
            for i in 0..4 {
                for j in 0..4 {
                    if linked(i, j) {
                        let other = coords[j].clone();
                        let rtt: f64 = at[i] - at[j];
                        coords[i].update(&other, rtt.abs(), nudge(round + i * 4 + j));
                    }
                }
            }
        }
        let predicted = coords[0].distance_ms(&coords[2]);
        assert!(
            predicted > 70.0 && predicted < 130.0,
            "a-c predicted {predicted:.1}, truth 100"
        );
    }

    #[test]
    fn nonsense_from_a_peer_moves_nothing() {
        let mut me = Coordinate::default();
        let before = me.clone();
        let mut bad = Coordinate::default();
        bad.vec[0] = f64::NAN;
        me.update(&bad, 50.0, nudge(0));
        me.update(&Coordinate::default(), -3.0, nudge(0));
        me.update(&Coordinate::default(), f64::INFINITY, nudge(0));
        assert_eq!(me, before);
    }
}
