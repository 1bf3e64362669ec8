//! Debounce with a leading edge and a maximum wait: the first change after a quiet spell is
//! synced at once; the changes that follow it within a burst become one sync pass.
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    /// Sync once no change arrived for this long...
    pub quiet: Duration,
    /// ...or once the oldest unsynced change has waited this long, whichever comes first.
    pub max_wait: Duration,
}

impl Debounce {
    /// When to sync, given the first and the latest unsynced change.
    pub fn deadline(&self, first: Instant, last: Instant) -> Instant {
        (last + self.quiet).min(first + self.max_wait)
    }

    /// Waits for a change. After `quiet` with nothing to do (`idle_since`: when the last sync
    /// ended) it returns at once; otherwise the change is part of a burst, which is waited out
    /// (quiet period, at most `max_wait`). A mass deletion whose first entries a leading-edge pass
    /// removes is still held whole: the breaker counts the removals of recent passes too.
    pub async fn settle(&self, changes: &Notify, idle_since: Instant) {
        changes.notified().await;
        let first = Instant::now();
        if first.duration_since(idle_since) >= self.quiet {
            return;
        }
        let mut last = first;
        loop {
            tokio::select! {
                _ = sleep_until(self.deadline(first, last)) => return,
                _ = changes.notified() => last = Instant::now(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const D: Debounce = Debounce {
        quiet: Duration::from_millis(200),
        max_wait: Duration::from_secs(2),
    };

    #[tokio::test(start_paused = true)]
    async fn the_first_change_after_a_quiet_spell_syncs_at_once() {
        let n = Arc::new(Notify::new());
        let idle_since = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        n.notify_one();
        let start = Instant::now();
        D.settle(&n, idle_since).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_right_after_a_sync_waits_for_the_quiet_period() {
        let n = Arc::new(Notify::new());
        n.notify_one();
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_burst_syncs_at_the_maximum_wait() {
        let n = Arc::new(Notify::new());
        let feeder = {
            let n = n.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    n.notify_one();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_burst_syncs_a_quiet_period_after_its_end() {
        let n = Arc::new(Notify::new());
        let feeder = {
            let n = n.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    n.notify_one();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        // Last change at 400 ms, then 200 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(600));
        feeder.await.unwrap();
    }
}
