//! `CLIENT PAUSE timeout [WRITE|ALL]` and `CLIENT UNPAUSE`.
//!
//! While a pause holds, a client's next command waits before it runs: every command under
//! `ALL`; under `WRITE`, commands that may write (and `PUBLISH`, and an `EXEC` holding a
//! write), as Redis 7.0 does, so reads go on being served. `CLIENT PAUSE` and `CLIENT
//! UNPAUSE` themselves never wait. A later pause keeps the later deadline and the stronger
//! mode of the two. Writes replicated from other regions and the expiry sweep go on: a pause
//! holds this node's clients, not the cluster (Redis pauses its own expiry too).

use tokio::sync::watch;
use tokio::time::Instant;

/// A pause in force.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Paused {
    until: Instant,
    all: bool,
}

/// The node's pause: none, or until when and for what.
pub struct Pause(watch::Sender<Option<Paused>>);

impl Default for Pause {
    fn default() -> Pause {
        Pause(watch::channel(None).0)
    }
}

impl Pause {
    /// Pauses clients until `until` (every command when `all`, else those that may write).
    pub fn pause(&self, until: Instant, all: bool) {
        self.0.send_modify(|p| {
            *p = Some(match *p {
                Some(old) if old.until > Instant::now() => Paused {
                    until: old.until.max(until),
                    all: old.all || all,
                },
                _ => Paused { until, all },
            })
        });
    }

    /// Ends any pause at once.
    pub fn unpause(&self) {
        self.0.send_replace(None);
    }

    /// Whether a command (one that may write when `write`) would wait now.
    pub fn holds(&self, write: bool) -> bool {
        match *self.0.borrow() {
            Some(p) => p.until > Instant::now() && (p.all || write),
            None => false,
        }
    }

    /// Waits while a pause holds a command that may write (when `write`) or any command.
    pub async fn wait(&self, write: bool) {
        let mut rx = self.0.subscribe();
        loop {
            let paused = *rx.borrow_and_update();
            let Some(p) = paused else { return };
            if p.until <= Instant::now() || !(p.all || write) {
                return;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(p.until) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn writes_wait_out_a_write_pause_and_reads_do_not() {
        let pause = Pause::default();
        let started = Instant::now();
        pause.pause(started + Duration::from_secs(2), false);
        assert!(pause.holds(true) && !pause.holds(false));
        pause.wait(false).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
        pause.wait(true).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(!pause.holds(true));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_pause_keeps_the_later_deadline_and_the_stronger_mode() {
        let pause = Pause::default();
        let started = Instant::now();
        pause.pause(started + Duration::from_secs(5), false);
        pause.pause(started + Duration::from_secs(1), true);
        assert!(pause.holds(false), "ALL wins over WRITE");
        pause.wait(false).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn unpause_releases_the_waiting_at_once() {
        let pause = std::sync::Arc::new(Pause::default());
        pause.pause(Instant::now() + Duration::from_secs(60), true);
        let waiter = tokio::spawn({
            let pause = pause.clone();
            async move { pause.wait(false).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished());
        pause.unpause();
        waiter.await.unwrap();
        assert!(!pause.holds(true));
    }
}
