//! Running one function over several parts of a job on threads: the engines' parallel steps
//! (the funnel tally, the paths tally) and the extension's segment readers share it. Pure Rust;
//! inside PostgreSQL the caller blocks signals first (`src/threads.rs`), so the server's signal
//! handlers never run on these threads.

use std::sync::Mutex;

/// `f` over every part, each on its own thread (the first on the calling one); the results in
/// part order. A part whose thread could not start is run on the calling thread afterwards; a
/// panic on any thread is raised again on the calling one.
pub fn for_each_part<T: Send, R: Send>(parts: &mut [T], f: impl Fn(&mut T) -> R + Sync) -> Vec<R> {
    let Some((first, rest)) = parts.split_first_mut() else {
        return Vec::new();
    };
    if rest.is_empty() {
        return vec![f(first)];
    }
    let f = &f;
    // Each part is taken by its thread, or by this one when the thread could not start.
    let cells: Vec<Mutex<Option<&mut T>>> = rest.iter_mut().map(|p| Mutex::new(Some(p))).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = cells
            .iter()
            .map(|cell| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || take(cell).map(f))
                    .ok()
            })
            .collect();
        let mut out = vec![f(first)];
        for (handle, cell) in handles.into_iter().zip(&cells) {
            let ran =
                handle.and_then(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            out.extend(ran.or_else(|| take(cell).map(f)));
        }
        out
    })
}

fn take<'a, T>(cell: &Mutex<Option<&'a mut T>>) -> Option<&'a mut T> {
    cell.lock().unwrap_or_else(|p| p.into_inner()).take()
}

#[cfg(test)]
mod tests {
    use super::for_each_part;

    #[test]
    fn every_part_once_in_order() {
        for n in 0..6 {
            let mut parts: Vec<Vec<u32>> = (0..n).map(|i| vec![i; i as usize + 1]).collect();
            let sums = for_each_part(&mut parts, |p| {
                p.push(100);
                p.iter().sum::<u32>()
            });
            let want: Vec<u32> = (0..n).map(|i| i * (i + 1) + 100).collect();
            assert_eq!(sums, want);
            assert!(parts.iter().all(|p| p.last() == Some(&100)));
        }
    }
}
