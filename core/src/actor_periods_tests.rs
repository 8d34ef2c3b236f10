use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// The reference: a map per actor.
fn reference(rows: &[(i64, i32)]) -> Vec<Entry> {
    let mut m: BTreeMap<i64, (i32, u64)> = BTreeMap::new();
    for &(a, p) in rows {
        let e = m.entry(a).or_insert((p, 0));
        e.0 = e.0.min(p);
        e.1 |= period_bit(p);
    }
    m.into_iter()
        .map(|(actor, (first, mask))| Entry { actor, first, mask })
        .collect()
}

fn state_of(rows: &[(i64, i32)]) -> ActorPeriods {
    let mut s = ActorPeriods::default();
    for &(a, p) in rows {
        s.add(a, p);
    }
    s
}

#[test]
fn groups_per_actor_with_first_period_and_mask() {
    let mut s = state_of(&[(7, 3), (2, 0), (7, 1), (7, 3), (2, -1), (9, 70)]);
    assert_eq!(
        s.entries(),
        &[
            Entry {
                actor: 2,
                first: -1,
                mask: 1
            },
            Entry {
                actor: 7,
                first: 1,
                mask: 0b1010
            },
            Entry {
                actor: 9,
                first: 70,
                mask: 0
            },
        ]
    );
}

#[test]
fn radix_path_and_fallback_agree_with_the_reference() {
    // Many rows (the radix sort runs above 256 keys), lifecycle-style negative periods, and
    // actors spread over the whole i64 range (the fallback sort).
    let dense: Vec<(i64, i32)> = (0..5000i64)
        .map(|i| ((i * 7919) % 1201, (i % 37) as i32 - 1))
        .collect();
    let lifecycle: Vec<(i64, i32)> = (0..3000i32)
        .map(|i| {
            (
                (i % 400) as i64,
                if i % 5 == 0 { -1000 - (i % 31) } else { i % 31 },
            )
        })
        .collect();
    let spread: Vec<(i64, i32)> = (0..3000i32)
        .map(|i| {
            (
                (i as i64).wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64) | 1,
                i % 5,
            )
        })
        .collect();
    for rows in [dense, lifecycle, spread] {
        assert_eq!(state_of(&rows).entries(), reference(&rows).as_slice());
    }
}

#[test]
fn flushes_at_the_cap_and_keeps_one_entry_per_actor() {
    let rows: Vec<(i64, i32)> = (0..PENDING_CAP as i64 + 10)
        .map(|i| (i % 1000, (i % 40) as i32))
        .collect();
    let mut s = state_of(&rows);
    assert!(s.pending.len() < 20, "the buffer was grouped at the cap");
    assert_eq!(s.entries(), reference(&rows).as_slice());
}

proptest! {
    #[test]
    fn merged_states_equal_one_state(
        a in prop::collection::vec((-50i64..3000, -1100i32..80), 0..600),
        b in prop::collection::vec((-50i64..3000, -1100i32..80), 0..600),
    ) {
        let mut x = state_of(&a);
        x.merge(state_of(&b));
        let all: Vec<_> = a.iter().chain(b.iter()).copied().collect();
        let want = reference(&all);
        prop_assert_eq!(x.entries().to_vec(), want.clone());
        let mut y = ActorPeriods::from_sorted(reference(&a));
        y.merge(state_of(&b));
        prop_assert_eq!(y.entries().to_vec(), want);
    }
}
