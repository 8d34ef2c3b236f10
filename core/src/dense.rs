//! Grouping rows by a dense integer key with a stable counting sort: two linear passes instead
//! of a comparison sort. Person ids of a project are mostly dense, so the paths engine groups
//! each person's events this way (the funnel reader has its own parallel form of it,
//! `src/segments/funnels.rs`).

/// Where each key's rows start in a stable counting sort of `keys` (`n` of them): the smallest
/// key and, per key − smallest, the offset of its first row (one more entry at the end: `n`).
/// `None` when there are no keys, or they spread over more than four slots a row (a comparison
/// sort is cheaper then).
pub fn key_offsets(keys: impl Iterator<Item = i64> + Clone, n: usize) -> Option<(i64, Vec<usize>)> {
    let (min, max) = keys.clone().fold(None, |acc: Option<(i64, i64)>, k| {
        Some(acc.map_or((k, k), |(lo, hi)| (lo.min(k), hi.max(k))))
    })?;
    let span = max.abs_diff(min) as usize;
    if span > n.saturating_mul(4).max(1 << 16) {
        return None;
    }
    let mut start = vec![0usize; span + 2];
    for k in keys {
        start[(k - min) as usize + 1] += 1;
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    Some((min, start))
}
