//! Debounce with a maximum wait: a burst of changes becomes one sync pass.
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

    /// Waits for a change, then for the burst it starts to settle (or for `max_wait`). Every
    /// change waits out its burst, never synced on its leading edge: a sync that started in the
    /// middle of a mass deletion would remove its first few entries below the removal breaker.
    pub async fn settle(&self, changes: &Notify) {
        changes.notified().await;
        let first = Instant::now();
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
    async fn a_single_change_syncs_after_the_quiet_period() {
        let n = Arc::new(Notify::new());
        n.notify_one();
        let start = Instant::now();
        D.settle(&n).await;
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
        D.settle(&n).await;
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
        D.settle(&n).await;
        // Last change at 400 ms, then 200 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(600));
        feeder.await.unwrap();
    }
}
