//! Debounce with a leading edge and a maximum wait: the first change after a quiet spell is
//! synced at once; the changes that follow it within a burst become one sync pass, which starts
//! once they have been quiet for a while, the first has waited long enough, or enough of them
//! wait (a pass's statuses then go out while a long burst goes on, not all at its end).
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

/// Changes that want a sync pass: a signal, and how many arrived since the last pass began.
#[derive(Debug, Default)]
pub struct Changes {
    signal: Notify,
    waiting: AtomicUsize,
    /// A grant deleted since the last pass began.
    removal: AtomicBool,
}

impl Changes {
    pub fn note(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.signal.notify_one();
    }

    /// A change that removes (a grant deleted): never synced on the leading edge, so that a
    /// mass deletion reaches the breaker whole, not one grant first and the rest after.
    pub fn note_removal(&self) {
        self.removal.store(true, Ordering::Relaxed);
        self.note();
    }

    /// Waits up to `max`, or until a change arrives: a pass that failed need not wait out its
    /// back-off once something changed (the watches reconnecting after an outage, say).
    pub async fn wait_for(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.signal.notified()).await;
    }

    fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    /// Sync once no change arrived for this long...
    pub quiet: Duration,
    /// ...or once the oldest unsynced change has waited this long...
    pub max_wait: Duration,
    /// ...or once this many changes wait, whichever comes first.
    pub max_changes: usize,
}

impl Debounce {
    /// When to sync, given the first and the latest unsynced change.
    pub fn deadline(&self, first: Instant, last: Instant) -> Instant {
        (last + self.quiet).min(first + self.max_wait)
    }

    /// Waits for a change. After `quiet` with nothing to do (`idle_since`: when the last sync
    /// ended) it returns at once; otherwise the change is part of a burst, which is waited out
    /// (quiet period, at most `max_wait` or `max_changes`). A removal is always waited out so:
    /// the leading edge is for additions and changes, and a mass deletion is judged as a whole
    /// (the breaker also counts the removals of recent passes). The changes it returns for are
    /// counted from then on as the next pass's.
    pub async fn settle(&self, changes: &Changes, idle_since: Instant) {
        changes.signal.notified().await;
        let first = Instant::now();
        if first.duration_since(idle_since) < self.quiet || changes.removal.load(Ordering::Relaxed)
        {
            let mut last = first;
            while changes.waiting() < self.max_changes {
                tokio::select! {
                    _ = sleep_until(self.deadline(first, last)) => break,
                    _ = changes.signal.notified() => last = Instant::now(),
                }
            }
        }
        changes.waiting.store(0, Ordering::Relaxed);
        changes.removal.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const D: Debounce = Debounce {
        quiet: Duration::from_millis(200),
        max_wait: Duration::from_secs(2),
        max_changes: 1000,
    };

    /// `count` changes, one every `ms` milliseconds, the first at once.
    fn feed(n: &Arc<Changes>, count: usize, ms: u64) -> tokio::task::JoinHandle<()> {
        let n = n.clone();
        tokio::spawn(async move {
            for _ in 0..count {
                n.note();
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_change_after_a_quiet_spell_syncs_at_once() {
        let n = Arc::new(Changes::default());
        let idle_since = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        n.note();
        let start = Instant::now();
        D.settle(&n, idle_since).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_removal_after_a_quiet_spell_waits_for_the_quiet_period() {
        let n = Arc::new(Changes::default());
        let idle_since = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        n.note_removal();
        let start = Instant::now();
        D.settle(&n, idle_since).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        // The next change after a quiet spell is on the leading edge again.
        tokio::time::sleep(Duration::from_secs(5)).await;
        n.note();
        let start = Instant::now();
        D.settle(&n, idle_since).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_right_after_a_sync_waits_for_the_quiet_period() {
        let n = Arc::new(Changes::default());
        n.note();
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_burst_syncs_at_the_maximum_wait() {
        let n = Arc::new(Changes::default());
        let feeder = feed(&n, 100, 50);
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        feeder.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_burst_syncs_a_quiet_period_after_its_end() {
        let n = Arc::new(Changes::default());
        let feeder = feed(&n, 5, 100);
        let start = Instant::now();
        D.settle(&n, Instant::now()).await;
        // Last change at 400 ms, then 200 ms of quiet.
        assert_eq!(start.elapsed(), Duration::from_millis(600));
        feeder.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_syncs_once_enough_changes_wait() {
        let n = Arc::new(Changes::default());
        let d = Debounce {
            max_changes: 10,
            ..D
        };
        let feeder = feed(&n, 100, 50);
        let start = Instant::now();
        d.settle(&n, Instant::now()).await;
        // The tenth change arrives at 450 ms; the maximum wait (2 s) is not reached.
        assert_eq!(start.elapsed(), Duration::from_millis(450));
        // The next pass counts from here: the eight changes of the next 400 ms are its own.
        tokio::time::sleep(Duration::from_millis(425)).await;
        assert_eq!(n.waiting(), 8);
        feeder.abort();
    }
}
