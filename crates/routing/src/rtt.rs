//! The round trip to one peer.

/// Samples the minimum is taken over.
const WINDOW: usize = 8;
/// Weight of a new windowed minimum in the average.
const ALPHA: f64 = 0.25;

/// A round-trip estimate from samples in milliseconds.
#[derive(Clone, Debug, Default)]
pub struct Rtt {
    recent: Vec<f64>,
    next: usize,
    smoothed: Option<f64>,
}

impl Rtt {
    /// A new sample (a ping's round trip, in ms); nonsense (negative, not finite) is ignored.
    pub fn sample(&mut self, ms: f64) {
        if !ms.is_finite() || ms < 0.0 {
            return;
        }
        if self.recent.len() < WINDOW {
            self.recent.push(ms);
        } else {
            self.recent[self.next] = ms;
        }
        self.next = (self.next + 1) % WINDOW;
        let floor = self.recent.iter().copied().fold(f64::INFINITY, f64::min);
        self.smoothed = Some(match self.smoothed {
            None => floor,
            Some(s) => s + ALPHA * (floor - s),
        });
    }

    /// The estimate, once there is a sample.
    pub fn ms(&self) -> Option<f64> {
        self.smoothed
    }

    /// The lowest of the recent samples.
    pub fn floor_ms(&self) -> Option<f64> {
        (!self.recent.is_empty()).then(|| self.recent.iter().copied().fold(f64::INFINITY, f64::min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_samples_are_the_estimate_and_a_slow_answer_changes_nothing() {
        let mut rtt = Rtt::default();
        assert_eq!(rtt.ms(), None);
        for _ in 0..5 {
            rtt.sample(80.0);
        }
        assert_eq!(rtt.ms(), Some(80.0));
        rtt.sample(400.0); // queued behind a big frame
        assert_eq!(rtt.ms(), Some(80.0));
        rtt.sample(-1.0);
        rtt.sample(f64::NAN);
        assert_eq!(rtt.ms(), Some(80.0));
    }

    #[test]
    fn a_new_path_shows_within_a_window_and_converges() {
        let mut rtt = Rtt::default();
        for _ in 0..8 {
            rtt.sample(80.0);
        }
        // Shorter at once: the minimum drops, the average follows.
        rtt.sample(40.0);
        assert_eq!(rtt.floor_ms(), Some(40.0));
        assert_eq!(rtt.ms(), Some(70.0));
        for _ in 0..40 {
            rtt.sample(40.0);
        }
        assert!((rtt.ms().unwrap() - 40.0).abs() < 0.01);
        // Longer: only once the window holds no shorter sample.
        for _ in 0..7 {
            rtt.sample(120.0);
        }
        assert!((rtt.ms().unwrap() - 40.0).abs() < 0.01);
        rtt.sample(120.0);
        assert_eq!(rtt.floor_ms(), Some(120.0));
        assert!(rtt.ms().unwrap() > 40.0);
    }
}
