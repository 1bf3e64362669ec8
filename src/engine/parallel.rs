//! Work spread over the machine's cores, for the steps of a plan that are one small job done
//! thousands of times (a first plan validates and renders every grant and reads every entry back).
//! Results come back in the order of the items, so a plan is the same however it was split.
use std::sync::LazyLock;

/// Below this many items per thread, starting a thread costs more than it saves.
const MIN_PER_THREAD: usize = 512;

/// The cores this process may use (cgroup CPU limits included), at most 4.
static THREADS: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
});

/// `items.iter().map(f).collect()`, on up to [`THREADS`] threads.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = (*THREADS).min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<_> = items
            .chunks(chunk)
            .skip(1)
            .map(|c| s.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        // This thread takes the first part itself.
        let mut out: Vec<R> = Vec::with_capacity(items.len());
        out.extend(items[..chunk].iter().map(f));
        for t in others {
            out.extend(joined(t));
        }
        out
    })
}

/// `items.iter().map(f).collect()` for a few big jobs (a job's size is `units(item)`): each on a
/// thread of its own, up to [`THREADS`], when at least two are big enough to pay for a thread.
pub(crate) fn each<T: Sync, R: Send>(
    items: &[T],
    units: impl Fn(&T) -> usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let big = items.iter().filter(|i| units(i) >= MIN_PER_THREAD).count();
    if big < 2 || *THREADS < 2 || items.len() > *THREADS {
        return items.iter().map(f).collect();
    }
    let f = &f;
    std::thread::scope(|s| {
        let others: Vec<_> = items[1..].iter().map(|i| s.spawn(move || f(i))).collect();
        let mut out = Vec::with_capacity(items.len());
        out.push(f(&items[0]));
        out.extend(others.into_iter().map(joined));
        out
    })
}

/// A thread's result; its panic goes on in the caller.
fn joined<R>(t: std::thread::ScopedJoinHandle<'_, R>) -> R {
    t.join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_items_order_at_any_size() {
        for n in [0, 1, 511, 1024, 1025, 5000] {
            let items: Vec<usize> = (0..n).collect();
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let out = super::map(&items, |i| {
                threads.lock().unwrap().insert(std::thread::current().id());
                i * 2
            });
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            if n >= 1024 && *super::THREADS > 1 {
                assert!(threads.lock().unwrap().len() > 1, "{n} items on one thread");
            }
        }
    }

    #[test]
    fn big_jobs_run_on_threads_of_their_own_and_keep_their_order() {
        for sizes in [
            vec![],
            vec![5000],
            vec![600, 10],
            vec![600, 700],
            vec![10, 2000, 3000],
        ] {
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let out = super::each(
                &sizes,
                |n| *n,
                |n| {
                    threads.lock().unwrap().insert(std::thread::current().id());
                    n + 1
                },
            );
            assert_eq!(out, sizes.iter().map(|n| n + 1).collect::<Vec<_>>());
            let big = sizes
                .iter()
                .filter(|n| **n >= super::MIN_PER_THREAD)
                .count();
            let spread = big >= 2 && *super::THREADS >= sizes.len();
            assert_eq!(threads.lock().unwrap().len() > 1, spread, "{sizes:?}");
        }
    }
}
