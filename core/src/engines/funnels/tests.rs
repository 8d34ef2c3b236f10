use super::*;

/// 70,000 actors with pseudo-random events over 3 steps and 3 breakdown values.
fn actors() -> Vec<Vec<Ev>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..70_000)
        .map(|_| {
            (0..1 + next() % 6)
                .map(|_| Ev {
                    ts: (next() % 10_000_000) as i64,
                    steps: 1 << (next() % 3),
                    excl: 0,
                    bd: (next() % 3) as u32,
                })
                .collect()
        })
        .collect()
}

#[test]
fn threads_give_the_single_pass_tally_to_the_last_bit() {
    let spec = Spec {
        order: Order::Ordered,
        num_steps: 3,
        window_us: 3_000_000,
        exclusions: vec![],
        attribution: Attribution::FirstTouch,
        has_breakdown: true,
        optional_steps: 0,
    };
    let run = |threads: usize| {
        let mut evs = actors();
        let slices: Vec<&mut [Ev]> = evs.iter_mut().map(Vec::as_mut_slice).collect();
        tally_steps(&spec, 3, slices, threads).finish(Some(10), false)
    };
    let one = run(1);
    assert!(one.iter().map(|s| s.steps[0].count).sum::<u64>() > 20_000);
    assert!(one[0].steps[2].average_conversion_time.is_some());
    for threads in [2, 3, 8] {
        let many = run(threads);
        assert_eq!(many, one, "{threads} threads");
        // Bit-identical averages, not just approximately equal.
        for (a, b) in many.iter().zip(&one) {
            for (x, y) in a.steps.iter().zip(&b.steps) {
                assert_eq!(
                    x.average_conversion_time.map(f64::to_bits),
                    y.average_conversion_time.map(f64::to_bits)
                );
            }
        }
    }
}
