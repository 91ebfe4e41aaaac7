//! Work split over the cores in contiguous shares, answers kept in share order.

/// `items` cut into contiguous shares, one per thread: a thread per `per_thread` items, at
/// least one and at most one per core.
pub(crate) fn split<T>(mut items: Vec<T>, per_thread: usize) -> Vec<Vec<T>> {
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = (items.len() / per_thread.max(1)).clamp(1, cores);
    let share = items.len().div_ceil(threads).max(1);
    let mut shares = Vec::with_capacity(threads);
    while items.len() > share {
        let rest = items.split_off(share);
        shares.push(items);
        items = rest;
    }
    shares.push(items);
    shares
}

/// `f` of every share, the first on this thread and the others on threads of their own;
/// answers in share order. A panic in a share is resumed here.
pub(crate) fn map<T: Send, R: Send>(shares: Vec<Vec<T>>, f: impl Fn(Vec<T>) -> R + Sync) -> Vec<R> {
    let f = &f;
    run(shares.into_iter().map(|share| move || f(share)))
}

/// Runs `jobs`, the first on this thread and the others on threads of their own; answers in
/// job order. A panic in a job is resumed here.
pub(crate) fn run<R: Send, J: FnOnce() -> R + Send>(jobs: impl IntoIterator<Item = J>) -> Vec<R> {
    std::thread::scope(|scope| {
        let mut jobs = jobs.into_iter();
        let first = jobs.next();
        let handles: Vec<_> = jobs.map(|job| scope.spawn(job)).collect();
        let mut out: Vec<R> = first.into_iter().map(|job| job()).collect();
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

#[cfg(test)]
mod tests {
    /// Shares cover the items in order, and answers come back in share order.
    #[test]
    fn split_and_map_keep_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let shares = super::split(items.clone(), 100);
        assert!(!shares.is_empty() && shares.iter().all(|s| !s.is_empty()));
        let sums = super::map(shares.clone(), |s| s.iter().map(|&x| u64::from(x)).sum::<u64>());
        assert_eq!(sums.len(), shares.len());
        assert_eq!(shares.concat(), items);
        assert_eq!(sums.iter().sum::<u64>(), items.iter().map(|&x| u64::from(x)).sum::<u64>());
        assert_eq!(super::split(Vec::<u8>::new(), 10), vec![Vec::<u8>::new()]);
    }
}
