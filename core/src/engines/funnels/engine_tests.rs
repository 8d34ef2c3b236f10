use super::*;
use proptest::prelude::*;

const SEC: i64 = 1_000_000;
const MIN: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

fn bits(v: &[usize]) -> u32 {
    v.iter().fold(0, |m, &b| m | (1 << b))
}

/// An event at `t` seconds matching the 0-based `steps`.
fn ev(t: i64, steps: &[usize]) -> Ev {
    Ev {
        ts: t * SEC,
        steps: bits(steps),
        excl: 0,
        bd: 0,
    }
}

/// An event at `t` seconds matching the exclusions `excl`.
fn ex(t: i64, excl: &[usize]) -> Ev {
    Ev {
        ts: t * SEC,
        steps: 0,
        excl: bits(excl),
        bd: 0,
    }
}

/// An event matching nothing (only strict funnels see those).
fn other(t: i64) -> Ev {
    ev(t, &[])
}

fn with_bd(e: Ev, bd: u32) -> Ev {
    Ev { bd, ..e }
}

/// Events created one second apart, as PostHog's tests do when they give no timestamps.
fn seq(steps: &[&[usize]]) -> Vec<Ev> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| ev(i as i64 + 1, s))
        .collect()
}

/// Seconds since the epoch of a UTC date-time.
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
        .and_utc()
        .timestamp()
}

fn spec(order: Order, n: usize, window_s: i64) -> Spec {
    Spec {
        order,
        num_steps: n,
        window_us: window_s * SEC,
        exclusions: vec![],
        attribution: Attribution::FirstTouch,
        has_breakdown: false,
        optional_steps: 0,
    }
}

fn ordered(n: usize) -> Spec {
    spec(Order::Ordered, n, 14 * DAY)
}

fn excluding(mut s: Spec, exclusions: &[(usize, usize)]) -> Spec {
    s.exclusions = exclusions.to_vec();
    s
}

fn broken_down(mut s: Spec, a: Attribution) -> Spec {
    s.has_breakdown = true;
    s.attribution = a;
    s
}

/// Every actor through `evaluate`, then `Tally` without a limit.
fn run(spec: &Spec, actors: &[Vec<Ev>]) -> Vec<SeriesResult> {
    let mut tally = Tally::new(spec.num_steps);
    for a in actors {
        let mut evs = a.clone();
        for o in evaluate(spec, &mut evs) {
            tally.add(&o);
        }
    }
    tally.finish(None, false)
}

fn counts(series: &SeriesResult) -> Vec<u64> {
    series.steps.iter().map(|s| s.count).collect()
}

fn avgs(series: &SeriesResult) -> Vec<Option<f64>> {
    series
        .steps
        .iter()
        .map(|s| s.average_conversion_time)
        .collect()
}

fn medians(series: &SeriesResult) -> Vec<Option<f64>> {
    series
        .steps
        .iter()
        .map(|s| s.median_conversion_time)
        .collect()
}

/// Counts of a funnel without breakdown; `[]` when nobody entered.
fn funnel_counts(spec: &Spec, actors: &[Vec<Ev>]) -> Vec<u64> {
    let res = run(spec, actors);
    assert!(res.len() <= 1, "one series expected, got {res:?}");
    res.first().map(counts).unwrap_or_default()
}

/// `(bd, level)` of each outcome of one actor.
fn levels(spec: &Spec, evs: &[Ev]) -> Vec<(u32, usize)> {
    let mut evs = evs.to_vec();
    evaluate(spec, &mut evs)
        .into_iter()
        .map(|o| (o.bd, o.level))
        .collect()
}

/// The level of an actor in a funnel without breakdown (`None`: not counted at all).
fn level(spec: &Spec, evs: &[Ev]) -> Option<usize> {
    let l = levels(spec, evs);
    assert!(l.len() <= 1);
    l.first().map(|&(_, level)| level)
}

fn day_bucket(ts: i64) -> i64 {
    ts.div_euclid(DAY * SEC)
}

// ---------------------------------------------------------------- 11.1 ordered funnels

#[test]
fn f1_basic_ordered_funnel() {
    let s = ordered(3);
    let p5 = seq(&[&[1], &[0], &[2]]);
    let actors = vec![
        seq(&[&[0]]),
        seq(&[&[0], &[1]]),
        seq(&[&[0], &[1], &[2]]),
        seq(&[&[2]]),
        p5.clone(),
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![4, 2, 1]);
    assert_eq!(level(&s, &p5), Some(1));
    assert_eq!(level(&s, &actors[3]), None);
}

#[test]
fn f3_all_events_match_every_step() {
    let all: &[usize] = &[0, 1, 2];
    let actors = vec![
        seq(&[all]),
        seq(&[all, all]),
        seq(&[all, all]),
        seq(&[all]),
        seq(&[all, all, all]),
    ];
    assert_eq!(funnel_counts(&ordered(3), &actors), vec![5, 3, 1]);
}

#[test]
fn f13_same_event_twice() {
    let both: &[usize] = &[0, 1];
    let actors = vec![seq(&[both, both]), seq(&[both])];
    assert_eq!(funnel_counts(&ordered(2), &actors), vec![2, 1]);
    assert_eq!(level(&ordered(2), &actors[0]), Some(2));
    assert_eq!(level(&ordered(2), &actors[1]), Some(1));
}

#[test]
fn f15_window_units_give_identical_results() {
    let actors = vec![
        vec![ev(0, &[0]), ev(10, &[1]), ev(20, &[2])],
        vec![ev(0, &[0]), ev(30, &[1])],
        vec![ev(5, &[0])],
    ];
    let days = run(&spec(Order::Ordered, 3, 14 * DAY), &actors);
    let weeks = run(&spec(Order::Ordered, 3, 2 * 7 * DAY), &actors);
    let hour = run(&spec(Order::Ordered, 3, HOUR), &actors);
    assert_eq!(counts(&days[0]), vec![3, 2, 1]);
    assert_eq!(days, weeks);
    assert_eq!(days, hour);
}

#[test]
fn f17_repeated_pageview_steps() {
    // steps [signup, pv, pv, pv, pv]; "blah" matches nothing and is not passed in.
    let su: &[usize] = &[0];
    let pv: &[usize] = &[1, 2, 3, 4];
    let actors = vec![
        seq(&[pv, su]),
        seq(&[su, pv]),
        seq(&[pv, su, pv]),
        seq(&[pv, pv, su, pv]),
        seq(&[su, pv, pv, pv, pv]),
        seq(&[pv, pv, pv, pv]),
    ];
    assert_eq!(funnel_counts(&ordered(5), &actors), vec![5, 4, 1, 1, 1]);
}

#[test]
fn f19_same_timestamp_counts_as_in_order() {
    let t = utc(2020, 1, 3, 0, 0, 0);
    let p1 = vec![ev(t, &[1]), ev(t, &[0])];
    let actors = vec![p1.clone(), vec![ev(t, &[0])]];
    assert_eq!(funnel_counts(&ordered(2), &actors), vec![2, 1]);
    let mut reversed = p1;
    reversed.reverse();
    assert_eq!(level(&ordered(2), &reversed), Some(2));
}

#[test]
fn f21_url_filtered_pageview_steps() {
    // steps [signup, pv aloha, pv aloha2, pv aloha2, pv any]
    let su: &[usize] = &[0];
    let aloha: &[usize] = &[1, 4];
    let aloha2: &[usize] = &[2, 3, 4];
    let actors = vec![
        seq(&[su]),
        seq(&[su, aloha]),
        seq(&[su, aloha, aloha2]),
        seq(&[su, aloha, aloha2, aloha2]),
        seq(&[su, aloha, aloha2, aloha, aloha2]),
    ];
    assert_eq!(funnel_counts(&ordered(5), &actors), vec![5, 4, 3, 2, 0]);
}

#[test]
fn f22_window_measured_from_first_step_days() {
    let s = spec(Order::Ordered, 3, 7 * DAY);
    let mut actors = vec![vec![ev(0, &[0]), ev(DAY, &[1])]; 10];
    actors.extend(vec![vec![ev(0, &[0]), ev(9 * DAY, &[1])]; 15]);
    assert_eq!(funnel_counts(&s, &actors), vec![25, 10, 0]);
}

#[test]
fn f23_window_in_seconds() {
    let s = spec(Order::Ordered, 3, 15);
    let mut actors = vec![vec![ev(0, &[0]), ev(10, &[1])]; 10];
    actors.extend(vec![vec![ev(0, &[0]), ev(20, &[1])]; 15]);
    assert_eq!(funnel_counts(&s, &actors), vec![25, 10, 0]);
}

#[test]
fn f25_exclusion_no_end_event() {
    let s = excluding(spec(Order::Ordered, 2, DAY), &[(0, 1)]);
    let p1 = vec![ev(HOUR, &[0]), ev(2 * HOUR, &[1])];
    let p2 = vec![
        ev(3 * HOUR, &[0]),
        ex(3 * HOUR + 30 * MIN, &[0]),
        ev(4 * HOUR, &[1]),
    ];
    let p3 = vec![ev(5 * HOUR, &[0]), ex(6 * HOUR, &[0])];
    let p4 = vec![ev(7 * HOUR, &[0]), ex(DAY + 8 * HOUR, &[0])];
    assert_eq!(level(&s, &p1), Some(2));
    assert_eq!(level(&s, &p2), None);
    assert_eq!(level(&s, &p3), None);
    assert_eq!(level(&s, &p4), Some(1));
    assert_eq!(funnel_counts(&s, &[p1, p2, p3, p4]), vec![2, 1]);
}

#[test]
fn f26_clean_restart_after_exclusion() {
    let s = excluding(spec(Order::Ordered, 2, 10), &[(0, 1)]);
    let p = vec![ev(0, &[0]), ex(1, &[0]), ev(31, &[0])];
    assert_eq!(funnel_counts(&s, &[p]), vec![1, 0]);
}

#[test]
fn f27_exclusion_outside_best_chain_window() {
    let s = excluding(spec(Order::Ordered, 2, 10), &[(0, 1)]);
    let p = vec![ev(0, &[0]), ev(31, &[0]), ex(32, &[0])];
    assert_eq!(funnel_counts(&s, &[p]), vec![1, 0]);
}

#[test]
fn f28_excluded_actor_leaves_empty_results() {
    let s = excluding(spec(Order::Ordered, 2, 10), &[(0, 1)]);
    let p = vec![ev(0, &[0]), ev(1, &[0]), ex(2, &[0])];
    assert_eq!(level(&s, &p), None);
    assert!(run(&s, &[p]).is_empty());
}

#[test]
fn f29_exclusion_action() {
    let s = excluding(ordered(2), &[(0, 1)]);
    let p1 = vec![ev(HOUR, &[0]), ev(2 * HOUR, &[1])];
    let p2 = vec![
        ev(3 * HOUR, &[0]),
        ex(3 * HOUR + 30 * MIN, &[0]),
        ev(4 * HOUR, &[1]),
    ];
    let p3 = vec![ev(5 * HOUR, &[0]), ev(6 * HOUR, &[1])];
    assert_eq!(level(&s, &p2), None);
    assert_eq!(funnel_counts(&s, &[p1, p2, p3]), vec![2, 2]);
}

#[test]
fn f31_exclusions_between_steps() {
    let h = |x: f64| (x * HOUR as f64) as i64;
    let p1 = vec![
        ev(h(1.0), &[0]),
        ev(h(2.0), &[1]),
        ex(h(3.0), &[0]),
        ev(h(4.0), &[2]),
        ex(h(4.5), &[0]),
        ev(h(5.0), &[3]),
        ex(h(5.5), &[0]),
        ev(h(6.0), &[4]),
    ];
    let p2 = vec![
        ev(h(1.0), &[0]),
        ev(h(2.0), &[1]),
        ev(h(4.0), &[2]),
        ex(h(4.5), &[0]),
        ev(h(5.0), &[3]),
        ex(h(5.5), &[0]),
        ev(h(6.0), &[4]),
    ];
    let p3 = vec![
        ev(h(1.0), &[0]),
        ex(h(1.5), &[0]),
        ev(h(2.0), &[1]),
        ev(h(4.0), &[2]),
        ev(h(5.0), &[3]),
        ex(h(5.5), &[0]),
        ev(h(6.0), &[4]),
    ];
    let actors = [p1, p2, p3];
    let kept = |range: (usize, usize)| -> Vec<usize> {
        let s = excluding(ordered(5), &[range]);
        (0..3)
            .filter(|&i| level(&s, &actors[i]) == Some(5))
            .collect()
    };
    assert_eq!(kept((0, 1)), vec![0, 1]);
    assert_eq!(kept((1, 2)), vec![1, 2]);
    assert_eq!(kept((2, 3)), vec![2]);
    assert_eq!(kept((3, 4)), Vec::<usize>::new());
    assert_eq!(kept((1, 3)), vec![2]);
    let s = excluding(ordered(5), &[(0, 1)]);
    assert_eq!(funnel_counts(&s, &actors), vec![2, 2, 2, 2, 2]);
    let s = excluding(ordered(5), &[(3, 4)]);
    assert!(run(&s, &actors).is_empty());
}

#[test]
fn f32_multiple_exclusions_between_steps() {
    let h = |x: f64| (x * HOUR as f64) as i64;
    let (x, y) = (0, 1);
    let actors = [
        vec![
            ev(h(1.0), &[0]),
            ex(h(2.0), &[x]),
            ev(h(3.0), &[1]),
            ev(h(4.0), &[2]),
            ex(h(4.5), &[y]),
            ev(h(5.0), &[3]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ex(h(1.5), &[y]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ex(h(4.5), &[y]),
            ev(h(5.0), &[3]),
            ex(h(5.5), &[x]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ex(h(1.5), &[x]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ev(h(5.0), &[3]),
            ex(h(5.5), &[x]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ev(h(5.0), &[3]),
            ev(h(6.0), &[4]),
        ],
    ];
    for ranges in [[(0, 1), (2, 3)], [(0, 1), (0, 1)], [(0, 4), (0, 4)]] {
        let s = excluding(ordered(5), &ranges);
        let kept: Vec<usize> = (0..4)
            .filter(|&i| level(&s, &actors[i]).is_some())
            .collect();
        assert_eq!(kept, vec![3], "{ranges:?}");
        assert_eq!(funnel_counts(&s, &actors), vec![1, 1, 1, 1, 1]);
    }
}

#[test]
fn exclusion_after_the_window_expires_is_ignored() {
    let s = excluding(spec(Order::Ordered, 2, 10), &[(0, 1)]);
    let p = vec![ev(0, &[0]), ex(11, &[0]), ev(12, &[1])];
    assert_eq!(funnel_counts(&s, &[p]), vec![1, 0]);
}

#[test]
fn same_timestamp_group_never_reuses_an_event() {
    // PostHog test_events_same_timestamp_no_exclusions: ten events at one instant, each
    // matching several of ten steps, complete the funnel exactly once.
    let t = utc(2024, 1, 10, 12, 1, 0);
    let (a, b, c, d): (&[usize], &[usize], &[usize], &[usize]) =
        (&[0, 9], &[1, 2, 6], &[3, 4, 7], &[5, 8]);
    let p: Vec<Ev> = [a, b, b, c, c, d, b, c, d, a]
        .iter()
        .map(|s| ev(t, s))
        .collect();
    assert_eq!(level(&ordered(10), &p), Some(10));
    // Without the second "a" the last step has no unused event left.
    assert_eq!(level(&ordered(10), &p[..9]), Some(9));
}

#[test]
fn f33_same_instant_step_one_events() {
    let t = utc(2024, 1, 10, 12, 1, 0);
    let mut p = vec![ev(t, &[0]); 20];
    p.push(ev(utc(2024, 1, 11, 12, 1, 0), &[1]));
    assert_eq!(funnel_counts(&ordered(2), &[p]), vec![1, 1]);
}

#[test]
fn f37_empty_funnel_gives_empty_results() {
    assert!(run(&ordered(2), &[vec![]]).is_empty());
    assert!(evaluate(&ordered(2), &mut []).is_empty());
}

#[test]
fn f41_window_is_absolute_seconds() {
    let pv = utc(2024, 3, 1, 15, 10, 0);
    let signup = utc(2024, 3, 15, 14, 27, 0);
    let res = run(&ordered(2), &[vec![ev(pv, &[0]), ev(signup, &[1])]]);
    assert_eq!(counts(&res[0]), vec![1, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(1_207_020.0)]);
    assert_eq!(medians(&res[0]), vec![None, Some(1_207_020.0)]);
}

#[test]
fn f44_time_to_convert_bins() {
    assert_eq!(
        time_to_convert_bins(&[60.0, 360.0], None),
        vec![(60.0, 1), (210.0, 0), (360.0, 1)]
    );
}

#[test]
fn f45_first_time_for_user_steps() {
    // [pv first_time, pv]: the first-ever pv matches both steps, the second only step 1.
    let a = vec![
        ev(13 * HOUR + 46 * MIN, &[0, 1]),
        ev(13 * HOUR + 47 * MIN, &[1]),
    ];
    assert_eq!(funnel_counts(&ordered(2), &[a]), vec![1, 1]);
    // [pv first_time, pv first_time]: one event cannot fill both steps.
    let b = vec![ev(13 * HOUR + 46 * MIN, &[0, 1])];
    assert_eq!(funnel_counts(&ordered(2), &[b]), vec![1, 0]);
}

#[test]
fn f47_exclusions_ignored_inside_a_tie_group() {
    let base = utc(2024, 1, 10, 12, 0, 0);
    let mut p = vec![ev(base, &[0])];
    p.extend(vec![ev(base + MIN, &[1]); 30]);
    p.push(ex(base + MIN, &[0]));
    p.push(ev(base + MIN, &[2]));
    p.push(ev(base + 2 * MIN, &[3]));
    for range in [(0, 1), (1, 2)] {
        let s = excluding(ordered(4), &[range]);
        assert_eq!(
            funnel_counts(&s, std::slice::from_ref(&p)),
            vec![1, 1, 1, 1]
        );
    }
}

#[test]
fn f49_first_time_for_user_with_history() {
    let d = utc(2024, 3, 22, 0, 0, 0);
    let p1 = vec![ev(d + 13 * HOUR, &[1]), ev(d + 14 * HOUR, &[1])];
    let p2 = vec![ev(d + 13 * HOUR, &[0, 1]), ev(d + 14 * HOUR, &[1])];
    let p3 = vec![ev(d + 15 * HOUR, &[0, 1])];
    assert_eq!(
        funnel_counts(&ordered(2), &[p1, p2.clone(), p3.clone()]),
        vec![2, 1]
    );
    let old = utc(2023, 3, 22, 13, 0, 0);
    let p1_long = vec![
        ev(old, &[0, 1]),
        ev(d + 13 * HOUR, &[1]),
        ev(d + 14 * HOUR, &[1]),
    ];
    assert_eq!(funnel_counts(&ordered(2), &[p1_long, p2, p3]), vec![3, 1]);
}

#[test]
fn f53_excluded_completion_drops_actor() {
    let s = excluding(spec(Order::Ordered, 2, 10), &[(0, 1)]);
    let p = vec![
        ev(0, &[0]),
        ex(11, &[0]),
        ev(12, &[0]),
        ex(13, &[0]),
        ev(14, &[1]),
    ];
    assert!(run(&s, &[p]).is_empty());
}

#[test]
fn f55_attribution_modes() {
    const CHROME: u32 = 1;
    const SAFARI: u32 = 2;
    let p = vec![
        with_bd(ev(0, &[0]), CHROME),
        with_bd(ev(1, &[1]), SAFARI),
        with_bd(ev(2, &[1]), CHROME),
        with_bd(ev(3, &[2]), CHROME),
    ];
    let base = spec(Order::Ordered, 3, 30);
    let at = |a| levels(&broken_down(base.clone(), a), &p);
    assert_eq!(at(Attribution::FirstTouch), vec![(CHROME, 3)]);
    assert_eq!(at(Attribution::LastTouch), vec![(CHROME, 3)]);
    assert_eq!(at(Attribution::AllEvents), vec![(CHROME, 3)]);
    assert_eq!(at(Attribution::Step(0)), vec![(CHROME, 3)]);
    assert_eq!(at(Attribution::Step(1)), vec![(CHROME, 3), (SAFARI, 3)]);
    assert_eq!(at(Attribution::Step(2)), vec![(CHROME, 3)]);
}

#[test]
fn f57_group_aggregation() {
    // Actors are organisations: org 5 has u1's signup and u2's payment.
    let org5 = vec![
        ev(utc(2020, 1, 2, 14, 0, 0), &[0]),
        ev(utc(2020, 1, 3, 14, 0, 0), &[1]),
    ];
    let org6 = vec![ev(utc(2020, 1, 10, 14, 0, 0), &[0])];
    let res = run(&ordered(2), &[org5, org6]);
    assert_eq!(counts(&res[0]), vec![2, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(86_400.0)]);
}

// ---------------------------------------------------------------- 11.2 strict funnels

#[test]
fn fs1_strict_any_other_event_resets() {
    let s = spec(Order::Strict, 3, 14 * DAY);
    let (su, pv, ins) = (&[0usize][..], &[1usize][..], &[2usize][..]);
    let blah: &[usize] = &[];
    let actors = vec![
        seq(&[su]),
        seq(&[pv, su]),
        seq(&[su, pv, blah, ins]),
        seq(&[ins, blah, pv, su]),
        seq(&[pv, su, blah, pv, ins]),
        seq(&[blah, su, blah, pv]),
        seq(&[blah, su, pv, ins, blah]),
        seq(&[ins, pv]),
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![7, 2, 1]);
    assert_eq!(level(&s, &actors[2]), Some(2));
    assert_eq!(level(&s, &actors[6]), Some(3));
}

#[test]
fn fs2_repeated_first_step_restarts_the_chain() {
    let s = spec(Order::Strict, 3, 14 * DAY);
    let p = vec![ev(1, &[0]), ev(2, &[0]), ev(3, &[1]), ev(4, &[2])];
    assert_eq!(level(&s, &p), Some(3));
    let broken = vec![ev(1, &[0]), ev(2, &[1]), ev(3, &[0]), ev(4, &[2])];
    assert_eq!(level(&s, &broken), Some(2));
    let interrupted = vec![ev(1, &[0]), other(2), ev(3, &[1])];
    assert_eq!(level(&s, &interrupted), Some(1));
}

#[test]
fn fs3_strict_conversion_times() {
    let s = spec(Order::Strict, 3, 14 * DAY);
    let d = utc(2021, 5, 2, 0, 0, 0);
    let actors = vec![
        vec![ev(d, &[0])],
        vec![ev(d, &[0]), ev(d + HOUR, &[1])],
        vec![ev(d, &[0]), ev(d + 2 * HOUR, &[1]), ev(d + 4 * HOUR, &[2])],
    ];
    let res = run(&s, &actors);
    assert_eq!(counts(&res[0]), vec![3, 2, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(5400.0), Some(7200.0)]);
}

// ---------------------------------------------------------------- 11.3 unordered funnels

#[test]
fn u1_unordered_all_events_breakdown() {
    const CHROME: u32 = 1;
    const SAFARI: u32 = 2;
    let s = broken_down(spec(Order::Unordered, 2, 7 * DAY), Attribution::AllEvents);
    let p = vec![
        with_bd(ev(utc(2020, 1, 1, 12, 0, 0), &[0]), CHROME),
        with_bd(ev(utc(2020, 1, 2, 13, 0, 0), &[0]), SAFARI),
        with_bd(ev(utc(2020, 1, 2, 14, 0, 0), &[1]), SAFARI),
    ];
    let res = run(&s, &[p]);
    assert_eq!(res.len(), 2);
    assert_eq!(res[0].bd, SAFARI);
    assert_eq!(counts(&res[0]), vec![1, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(3600.0)]);
    assert_eq!(medians(&res[0]), vec![None, Some(3600.0)]);
    assert_eq!(res[1].bd, CHROME);
    assert_eq!(counts(&res[1]), vec![1, 0]);
    assert_eq!(avgs(&res[1]), vec![None, None]);
}

#[test]
fn u3_unordered_counts_distinct_steps() {
    let s = spec(Order::Unordered, 3, 14 * DAY);
    let (su, pv, ins) = (&[0usize][..], &[1usize][..], &[2usize][..]);
    let actors = vec![
        seq(&[su]),
        seq(&[pv, su]),
        seq(&[su, pv, ins]),
        seq(&[ins, pv, su]),
        seq(&[pv, su, ins]),
        seq(&[ins]),
        seq(&[pv]),
        seq(&[ins, pv]),
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![8, 5, 3]);
    let at_two: Vec<usize> = (0..8)
        .filter(|&i| level(&s, &actors[i]).unwrap() >= 2)
        .collect();
    assert_eq!(at_two, vec![1, 2, 3, 4, 7]);
}

#[test]
fn u5_unordered_first_complete_conversion_times() {
    let s = spec(Order::Unordered, 3, DAY);
    let d = utc(2021, 5, 2, 0, 0, 0);
    let actors = vec![
        vec![ev(d, &[0])],
        vec![ev(d, &[1]), ev(d + HOUR, &[0])],
        vec![
            ev(d, &[2]),
            ev(d + 2 * HOUR, &[0]),
            ev(d + 4 * HOUR, &[1]),
            ev(d + DAY, &[1]),
            ev(d + DAY + 3 * HOUR, &[2]),
            ev(d + DAY + 6 * HOUR, &[0]),
        ],
    ];
    let res = run(&s, &actors);
    assert_eq!(counts(&res[0]), vec![3, 2, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(5400.0), Some(7200.0)]);
}

#[test]
fn u7_unordered_exclusion_clears_progress() {
    let s = excluding(spec(Order::Unordered, 2, 14 * DAY), &[(0, 1)]);
    let p2 = vec![
        ev(3 * HOUR, &[0]),
        ex(3 * HOUR + 30 * MIN, &[0]),
        ev(4 * HOUR, &[1]),
    ];
    let actors = vec![
        vec![ev(HOUR, &[0]), ev(2 * HOUR, &[1])],
        p2.clone(),
        vec![ev(5 * HOUR, &[0]), ev(6 * HOUR, &[1])],
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![3, 2]);
    assert_eq!(level(&s, &p2), Some(1));
}

#[test]
fn u9_unordered_multiple_exclusions() {
    let s = excluding(spec(Order::Unordered, 5, 14 * DAY), &[(0, 4), (0, 4)]);
    let h = |x: f64| (x * HOUR as f64) as i64;
    let (x, y) = (0, 1);
    let actors = vec![
        vec![
            ev(h(1.0), &[0]),
            ex(h(2.0), &[x]),
            ev(h(3.0), &[1]),
            ev(h(4.0), &[2]),
            ex(h(4.5), &[y]),
            ev(h(5.0), &[3]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ex(h(1.5), &[y]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ex(h(4.5), &[y]),
            ev(h(5.0), &[3]),
            ex(h(5.5), &[x]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ex(h(1.5), &[x]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ev(h(5.0), &[3]),
            ex(h(5.5), &[x]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ev(h(2.0), &[1]),
            ev(h(4.0), &[2]),
            ev(h(5.0), &[3]),
            ev(h(6.0), &[4]),
        ],
        vec![
            ev(h(1.0), &[0]),
            ex(h(1.5), &[x]),
            ev(h(2.0), &[1]),
            ex(h(2.5), &[x]),
            ev(h(4.0), &[2]),
            ex(h(4.5), &[y]),
            ev(h(5.0), &[3]),
            ex(h(5.5), &[x]),
            ev(h(6.0), &[4]),
        ],
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![5, 2, 1, 1, 1]);
    let at_two: Vec<usize> = (0..5)
        .filter(|&i| level(&s, &actors[i]).unwrap() >= 2)
        .collect();
    assert_eq!(at_two, vec![0, 3]);
}

#[test]
fn u11_unordered_same_event_different_filters() {
    let s = spec(Order::Unordered, 2, 14 * DAY);
    assert_eq!(funnel_counts(&s, &[seq(&[&[0], &[1]])]), vec![1, 1]);
}

#[test]
fn u13_unordered_exclusion_steps_and_trends() {
    let s = excluding(spec(Order::Unordered, 3, 6 * HOUR), &[(0, 2)]);
    let d = utc(2024, 3, 1, 0, 0, 0);
    let u1 = vec![
        ev(d + 10 * HOUR, &[0]),
        ev(d + 11 * HOUR, &[1]),
        ex(d + 12 * HOUR, &[0]),
        ev(d + 13 * HOUR, &[2]),
    ];
    let u2 = vec![
        ev(d + 10 * HOUR, &[0]),
        ev(d + 11 * HOUR, &[1]),
        ev(d + 12 * HOUR, &[2]),
    ];
    assert_eq!(funnel_counts(&s, &[u1.clone(), u2.clone()]), vec![2, 1, 1]);
    // Trends with funnelToStep = 1: reached_from = level >= 1, reached_to = level >= 2.
    let day = day_bucket(d * SEC);
    let t1 = evaluate_trends_detailed(&s, &mut u1.clone(), &day_bucket, 1);
    let t2 = evaluate_trends_detailed(&s, &mut u2.clone(), &day_bucket, 1);
    assert_eq!(
        t1,
        vec![TrendOutcome {
            bucket: day,
            bd: 0,
            level: 1
        }]
    );
    assert_eq!(
        t2,
        vec![TrendOutcome {
            bucket: day,
            bd: 0,
            level: 3
        }]
    );
    let reached_to = [&t1, &t2]
        .iter()
        .filter(|t| t.iter().any(|o| o.level >= 2))
        .count();
    assert_eq!(reached_to, 1);
}

// ---------------------------------------------------------------- 11.4 conversion times

#[test]
fn c1_first_completed_attempt_times() {
    let d = utc(2021, 5, 1, 0, 0, 0);
    let p = vec![
        ev(d + HOUR, &[0]),
        ev(d + 2 * HOUR, &[1]),
        ev(d + 3 * HOUR, &[2]),
        ev(d + 2 * DAY + 4 * HOUR, &[0]),
        ev(d + 2 * DAY + 5 * HOUR, &[1]),
        ev(d + 3 * DAY + 7 * HOUR, &[0]),
        ev(d + 3 * DAY + 10 * HOUR, &[1]),
    ];
    for order in [Order::Ordered, Order::Strict, Order::Unordered] {
        let res = run(&spec(order, 3, DAY), std::slice::from_ref(&p));
        assert_eq!(counts(&res[0]), vec![1, 1, 1], "{order:?}");
        assert_eq!(avgs(&res[0])[1], Some(3600.0), "{order:?}");
        assert_eq!(medians(&res[0])[1], Some(3600.0), "{order:?}");
    }
}

#[test]
fn c2_average_and_median_conversion_times() {
    let d = utc(2020, 1, 1, 0, 0, 0);
    let actors = vec![
        vec![
            ev(d + 12 * HOUR, &[0]),
            ev(d + 13 * HOUR, &[1]),
            ev(d + 15 * HOUR, &[2]),
        ],
        vec![ev(d + 14 * HOUR, &[0]), ev(d + 16 * HOUR, &[1])],
        vec![
            ev(d + 14 * HOUR, &[0]),
            ev(d + 16 * HOUR, &[1]),
            ev(d + 17 * HOUR, &[2]),
        ],
    ];
    let res = run(&ordered(3), &actors);
    assert_eq!(counts(&res[0]), vec![3, 3, 2]);
    assert_eq!(avgs(&res[0]), vec![None, Some(6000.0), Some(5400.0)]);
    assert_eq!(medians(&res[0]), vec![None, Some(7200.0), Some(5400.0)]);
}

#[test]
fn c3_window_boundary_is_inclusive() {
    let d = utc(2020, 1, 2, 0, 0, 0);
    let actors = vec![
        vec![ev(d + 14 * HOUR, &[0]), ev(d + 14 * HOUR + 5 * MIN, &[1])],
        vec![ev(d + 14 * HOUR + 3 * MIN, &[0])],
        vec![ev(d + 12 * HOUR, &[0]), ev(d + 12 * HOUR + 15 * MIN, &[1])],
    ];
    let wide = run(&ordered(2), &actors);
    assert_eq!(counts(&wide[0]), vec![3, 2]);
    assert_eq!(avgs(&wide[0])[1], Some(600.0));
    let narrow_spec = spec(Order::Ordered, 2, 5 * MIN);
    let narrow = run(&narrow_spec, &actors);
    assert_eq!(counts(&narrow[0]), vec![3, 1]);
    assert_eq!(avgs(&narrow[0])[1], Some(300.0));
    assert_eq!(level(&narrow_spec, &actors[0]), Some(2));
}

// ---------------------------------------------------------------- 11.5 breakdowns

#[test]
fn b1_multi_property_breakdown_values() {
    let (chrome95, safari15, safari14) = (1, 2, 3);
    let s = broken_down(ordered(3), Attribution::FirstTouch);
    let d1 = utc(2020, 1, 1, 0, 0, 0);
    let d2 = utc(2020, 1, 2, 0, 0, 0);
    let actors = vec![
        vec![
            ev(d1 + 12 * HOUR, &[0]),
            ev(d1 + 13 * HOUR, &[1]),
            ev(d1 + 15 * HOUR, &[2]),
        ]
        .into_iter()
        .map(|e| with_bd(e, chrome95))
        .collect(),
        vec![ev(d2 + 14 * HOUR, &[0]), ev(d2 + 16 * HOUR, &[1])]
            .into_iter()
            .map(|e| with_bd(e, safari15))
            .collect(),
        vec![with_bd(ev(d2 + 14 * HOUR, &[0]), safari14)],
    ];
    let res = run(&s, &actors);
    let bds: Vec<u32> = res.iter().map(|r| r.bd).collect();
    assert_eq!(bds, vec![chrome95, safari15, safari14]);
    assert_eq!(counts(&res[0]), vec![1, 1, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(3600.0), Some(7200.0)]);
    assert_eq!(counts(&res[1]), vec![1, 1, 0]);
    assert_eq!(avgs(&res[1])[1], Some(7200.0));
    assert_eq!(counts(&res[2]), vec![1, 0, 0]);
}

#[test]
fn b3_breakdown_limit_merges_other() {
    let s = broken_down(ordered(3), Attribution::FirstTouch);
    let mut actors = Vec::new();
    for v in 1..=9u32 {
        for _ in 0..v {
            let gap = v as i64 * 60;
            actors.push(
                [ev(0, &[0]), ev(gap, &[1]), ev(2 * gap, &[2])]
                    .map(|e| with_bd(e, v))
                    .to_vec(),
            );
        }
    }
    let outcomes: Vec<Outcome> = actors
        .iter()
        .flat_map(|a| evaluate(&s, &mut a.clone()))
        .collect();
    let tally = |limit, no_other| {
        let mut t = Tally::new(3);
        outcomes.iter().for_each(|o| t.add(o));
        t.finish(limit, no_other)
    };
    let limited = tally(Some(5), false);
    let bds: Vec<u32> = limited.iter().map(|r| r.bd).collect();
    assert_eq!(bds, vec![9, 8, 7, 6, 5, OTHER_BD]);
    let other = &limited[5];
    assert_eq!(counts(other), vec![10, 10, 10]);
    // Other = 1×60 s, 2×120 s, 3×180 s, 4×240 s: mean 180, median 180.
    assert_eq!(avgs(other), vec![None, Some(180.0), Some(180.0)]);
    assert_eq!(medians(other), vec![None, Some(180.0), Some(180.0)]);
    assert_eq!(avgs(&limited[0]), vec![None, Some(540.0), Some(540.0)]);
    assert_eq!(tally(Some(5), true).len(), 9);
    assert_eq!(tally(None, false).len(), 9);
    assert_eq!(tally(Some(20), false).len(), 9);
}

#[test]
fn b5_step_zero_attribution_with_several_values() {
    let s = broken_down(ordered(2), Attribution::Step(0));
    let p: Vec<Ev> = (1..=4).map(|v| with_bd(ev(v as i64, &[0]), v)).collect();
    assert_eq!(levels(&s, &p), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    let res = run(&s, &[p]);
    assert_eq!(res.len(), 4);
    assert!(res.iter().all(|r| counts(r) == vec![1, 0]));
}

#[test]
fn b7_cohort_breakdown_never_merges_other() {
    // The caller evaluates the actor once per cohort it belongs to (0 = "all users").
    let mut t = Tally::new(2);
    for bd in [0, 7] {
        t.add(&Outcome {
            bd,
            level: 1,
            step_ts: vec![0],
            skipped: 0,
        });
    }
    let res = t.finish(Some(1), true);
    let bds: Vec<u32> = res.iter().map(|r| r.bd).collect();
    assert_eq!(bds, vec![0, 7]);
    assert!(res.iter().all(|r| counts(r) == vec![1, 0]));
}

/// B9's fixture: `(chrome, safari, mac, zero, alakazam)` = 1..=5, no value = 0.
fn b9_people() -> Vec<Vec<Ev>> {
    let d1 = utc(2020, 1, 1, 0, 0, 0);
    let d2 = utc(2020, 1, 2, 0, 0, 0);
    vec![
        vec![
            with_bd(ev(d1 + 12 * HOUR, &[0]), 1),
            ev(d1 + 13 * HOUR, &[1]),
        ],
        vec![
            ev(d1 + 13 * HOUR, &[0]),
            with_bd(ev(d2 + 13 * HOUR, &[1]), 2),
        ],
        vec![
            with_bd(ev(d2 + 14 * HOUR, &[0]), 3),
            ev(d2 + 15 * HOUR, &[1]),
        ],
        vec![
            with_bd(ev(d2 + 15 * HOUR, &[0]), 4),
            with_bd(ev(d2 + 16 * HOUR, &[1]), 5),
        ],
        vec![ev(d2 + 15 * HOUR, &[0]), ev(d2 + 16 * HOUR, &[1])],
    ]
}

#[test]
fn b9_first_touch_takes_first_non_null_value() {
    let s = broken_down(spec(Order::Ordered, 2, 7 * DAY), Attribution::FirstTouch);
    let people = b9_people();
    let attributed: Vec<Vec<(u32, usize)>> = people.iter().map(|p| levels(&s, p)).collect();
    assert_eq!(
        attributed,
        vec![
            vec![(1, 2)],
            vec![(2, 2)],
            vec![(3, 2)],
            vec![(4, 2)],
            vec![(0, 2)]
        ]
    );
    let res = run(&s, &people);
    assert_eq!(res.len(), 5);
    let by_bd = |bd: u32| res.iter().find(|r| r.bd == bd).unwrap();
    assert_eq!(avgs(by_bd(2))[1], Some(86_400.0));
    assert_eq!(avgs(by_bd(0))[1], Some(3600.0));
    // last_touch: person 4's later "alakazam" wins.
    let last = broken_down(spec(Order::Ordered, 2, 7 * DAY), Attribution::LastTouch);
    assert_eq!(levels(&last, &people[3]), vec![(5, 2)]);
    assert_eq!(levels(&last, &people[0]), vec![(1, 2)]);
}

#[test]
fn b11_step_zero_attribution() {
    let s = broken_down(spec(Order::Ordered, 2, 7 * DAY), Attribution::Step(0));
    let people = b9_people();
    let attributed: Vec<Vec<(u32, usize)>> = people[..4].iter().map(|p| levels(&s, p)).collect();
    assert_eq!(
        attributed,
        vec![vec![(1, 2)], vec![(0, 2)], vec![(3, 2)], vec![(4, 2)]]
    );
    let res = run(&s, &people[..4]);
    let null = res.iter().find(|r| r.bd == 0).unwrap();
    assert_eq!(avgs(null)[1], Some(86_400.0));
}

#[test]
fn b11_step_one_attribution_drops_actors_without_that_step() {
    // PostHog: "funnel items that never reach step_1 are NULLed out".
    let s = broken_down(spec(Order::Ordered, 2, 7 * DAY), Attribution::Step(1));
    let people = b9_people();
    let mut incomplete = vec![people[0].clone(), people[1].clone(), people[2].clone()];
    incomplete[1].truncate(1);
    incomplete[2].truncate(1);
    incomplete.push(people[3].clone());
    let res = run(&s, &incomplete);
    let bds: Vec<u32> = res.iter().map(|r| r.bd).collect();
    assert_eq!(bds, vec![0, 5]);
    assert!(res.iter().all(|r| counts(r) == vec![1, 1]));
}

#[test]
fn b13_group_breakdown() {
    let (finance, technology) = (1, 2);
    let s = broken_down(ordered(3), Attribution::FirstTouch);
    let p1 = [ev(0, &[0]), ev(HOUR, &[1]), ev(3 * HOUR, &[2])]
        .map(|e| with_bd(e, finance))
        .to_vec();
    let p2 = [ev(0, &[0]), ev(2 * HOUR, &[1])]
        .map(|e| with_bd(e, technology))
        .to_vec();
    let p3 = vec![with_bd(ev(0, &[0]), technology)];
    let res = run(&s, &[p1, p2, p3]);
    assert_eq!(res[0].bd, finance);
    assert_eq!(counts(&res[0]), vec![1, 1, 1]);
    assert_eq!(avgs(&res[0]), vec![None, Some(3600.0), Some(7200.0)]);
    assert_eq!(res[1].bd, technology);
    assert_eq!(counts(&res[1]), vec![2, 1, 0]);
    assert_eq!(avgs(&res[1]), vec![None, Some(7200.0), None]);
}

// ---------------------------------------------------------------- optional steps

#[test]
fn optional_steps_count_only_steps_done() {
    // PostHog test_funnel_with_optional_steps: steps 1 and 3 (0-based) are optional.
    let mut s = ordered(5);
    s.optional_steps = bits(&[1, 3]);
    let journeys: Vec<&[usize]> = vec![
        &[0],
        &[0, 1, 2],
        &[0, 2],
        &[0, 1, 2, 3, 4],
        &[0, 1, 2, 4],
        &[0, 2, 3],
        &[0, 2, 3, 4],
        &[0, 2, 4],
    ];
    let actors: Vec<Vec<Ev>> = journeys
        .iter()
        .map(|j| j.iter().map(|&k| ev(k as i64 * MIN, &[k])).collect())
        .collect();
    assert_eq!(funnel_counts(&s, &actors), vec![8, 3, 7, 3, 4]);
    let mut step135 = actors[7].clone();
    let o = evaluate(&s, &mut step135);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].level, 5);
    assert_eq!(o[0].skipped, bits(&[1, 3]));
    assert_eq!(
        o[0].step_ts,
        vec![0, 0, 2 * MIN * SEC, 2 * MIN * SEC, 4 * MIN * SEC]
    );
}

#[test]
fn optional_step_with_the_same_event() {
    // PostHog test_funnel_with_optional_steps_same_event: [e, e optional, e+url, e].
    let mut s = ordered(4);
    s.optional_steps = bits(&[1]);
    let e = |t: i64| ev(t * MIN, &[0, 1, 3]);
    let with_url = |t: i64| ev(t * MIN, &[0, 1, 2, 3]);
    let actors = vec![
        vec![e(0)],
        vec![e(0), e(1)],
        vec![e(0), e(1), e(2)],
        vec![e(0), with_url(1), e(2)],
    ];
    assert_eq!(funnel_counts(&s, &actors), vec![4, 2, 1, 1]);
}

// ---------------------------------------------------------------- funnel trends

fn trend_spec(n: usize, window_s: i64, exclusions: &[(usize, usize)]) -> Spec {
    excluding(spec(Order::Ordered, n, window_s), exclusions)
}

fn trends(spec: &Spec, evs: &[Ev]) -> Vec<(i64, usize)> {
    let base = day_bucket(utc(2021, 5, 1, 0, 0, 0) * SEC);
    evaluate_trends(spec, &mut evs.to_vec(), &day_bucket)
        .into_iter()
        .map(|(b, l)| (b - base, l))
        .collect()
}

#[test]
fn trends_exclusion_no_end_event() {
    let s = trend_spec(2, DAY, &[(0, 1)]);
    let d = utc(2021, 5, 1, 0, 0, 0);
    let p1 = vec![ev(d + HOUR, &[0]), ev(d + 2 * HOUR, &[1])];
    let p2 = vec![
        ev(d + 3 * HOUR, &[0]),
        ex(d + 3 * HOUR + 30 * MIN, &[0]),
        ev(d + 4 * HOUR, &[1]),
    ];
    let p3 = vec![ev(d + 5 * HOUR, &[0]), ex(d + 6 * HOUR, &[0])];
    let p4 = vec![ev(d + 7 * HOUR, &[0]), ex(d + DAY + 8 * HOUR, &[0])];
    assert_eq!(trends(&s, &p1), vec![(0, 2)]);
    assert_eq!(trends(&s, &p2), vec![]);
    assert_eq!(trends(&s, &p3), vec![]);
    assert_eq!(trends(&s, &p4), vec![(0, 1)]);
}

#[test]
fn trends_exclusion_multiple_possible_no_end_event() {
    let s = trend_spec(2, 10, &[(0, 1)]);
    let d = utc(2021, 5, 1, 0, 0, 0);
    let first = vec![ev(d, &[0]), ex(d + 1, &[0]), ev(d + 31, &[0])];
    let second = vec![ev(d, &[0]), ev(d + 31, &[0]), ex(d + 32, &[0])];
    let third = vec![ev(d, &[0]), ev(d + 1, &[0]), ex(d + 2, &[0])];
    assert_eq!(trends(&s, &first), vec![(0, 1)]);
    assert_eq!(trends(&s, &second), vec![(0, 1)]);
    assert_eq!(trends(&s, &third), vec![]);
}

#[test]
fn trends_exclusion_after_goal_keeps_conversion() {
    let s = trend_spec(3, 10, &[(1, 2)]);
    let d = utc(2021, 5, 1, 0, 0, 0);
    let p = vec![
        ev(d, &[0]),
        ev(d + 1, &[1]),
        ev(d + 3, &[2]),
        ev(d + 4, &[0]),
        ev(d + 5, &[1]),
        ex(d + 6, &[0]),
        ev(d + 7, &[2]),
    ];
    assert_eq!(trends(&s, &p), vec![(0, 3)]);
}

#[test]
fn trends_exclusion_multiday() {
    let s = trend_spec(2, 10, &[(0, 1)]);
    let d1 = utc(2021, 5, 1, 0, 0, 0);
    let d2 = utc(2021, 5, 2, 0, 0, 0);
    let first_day = vec![
        ev(d1, &[0]),
        ev(d1 + 1, &[1]),
        ev(d2 + 4, &[0]),
        ex(d2 + 5, &[0]),
        ev(d2 + 6, &[1]),
    ];
    assert_eq!(trends(&s, &first_day), vec![(0, 2)]);
    let second_day = vec![
        ev(d1, &[0]),
        ex(d1 + 1, &[0]),
        ev(d1 + 2, &[1]),
        ev(d2 + 4, &[0]),
        ev(d2 + 6, &[1]),
    ];
    assert_eq!(trends(&s, &second_day), vec![(1, 2)]);
    // A partial match, then an exclusion and a completion the next day: all dropped.
    let partial_then_full = vec![
        ev(d1, &[0]),
        ev(d2 + 30, &[0]),
        ex(d2 + 31, &[0]),
        ev(d2 + 32, &[1]),
    ];
    assert_eq!(trends(&s, &partial_then_full), vec![]);
    // Open exclusion on the second day: only the first day's entry remains.
    let open = vec![ev(d1, &[0]), ev(d2 + 30, &[0]), ex(d2 + 31, &[0])];
    assert_eq!(trends(&s, &open), vec![(0, 1)]);
    let three = trend_spec(3, 10, &[(1, 2)]);
    let open_after_two = vec![
        ev(d1, &[0]),
        ev(d1 + 1, &[1]),
        ev(d2 + 4, &[0]),
        ev(d2 + 5, &[1]),
        ex(d2 + 6, &[0]),
    ];
    assert_eq!(trends(&three, &open_after_two), vec![(0, 2)]);
}

#[test]
fn trends_excluded_completion_drops_everything() {
    let s = trend_spec(2, 10, &[(0, 1)]);
    let d = utc(2021, 5, 1, 0, 0, 0);
    let p = vec![
        ev(d, &[0]),
        ex(d + 11, &[0]),
        ev(d + 12, &[0]),
        ex(d + 13, &[0]),
        ev(d + 14, &[1]),
    ];
    assert_eq!(trends(&s, &p), vec![]);
}

#[test]
fn trends_entry_bucket_is_the_step_zero_day() {
    // U14-like: an entry converting days later still counts for its entry bucket.
    let s = spec(Order::Ordered, 2, 14 * DAY);
    let d = utc(2021, 5, 1, 0, 0, 0);
    let p = vec![
        ev(d + HOUR, &[0]),
        ev(d + 6 * DAY, &[1]),
        ev(d + 3 * DAY, &[0]),
    ];
    assert_eq!(trends(&s, &p), vec![(0, 2), (3, 2)]);
    // Two entries the same day: one result for that bucket.
    let twice = vec![ev(d + HOUR, &[0]), ev(d + 2 * HOUR, &[0])];
    assert_eq!(trends(&s, &twice), vec![(0, 1)]);
    // Strict trends reset on other events.
    let strict = spec(Order::Strict, 2, 14 * DAY);
    let interrupted = vec![ev(d, &[0]), other(d + 1), ev(d + 2, &[1])];
    assert_eq!(trends(&strict, &interrupted), vec![(0, 1)]);
}

#[test]
fn trends_breakdown_attribution() {
    const CHROME: u32 = 1;
    const SAFARI: u32 = 2;
    let d1 = utc(2021, 5, 1, 0, 0, 0);
    let d2 = utc(2021, 5, 2, 0, 0, 0);
    let base = day_bucket(d1 * SEC);
    let p = vec![
        with_bd(ev(d1, &[0]), CHROME),
        with_bd(ev(d1 + 1, &[0]), SAFARI),
        with_bd(ev(d1 + 14, &[1]), CHROME),
        with_bd(ev(d2, &[0]), CHROME),
        with_bd(ev(d2 + 1, &[1]), SAFARI),
        with_bd(ev(d2 + 14, &[1]), CHROME),
    ];
    let at = |a| {
        let s = broken_down(spec(Order::Ordered, 2, 30), a);
        evaluate_trends_detailed(&s, &mut p.clone(), &day_bucket, 1)
            .into_iter()
            .map(|t| (t.bd, t.bucket - base, t.level))
            .collect::<Vec<_>>()
    };
    let mut first = at(Attribution::FirstTouch);
    first.sort();
    assert_eq!(first, vec![(CHROME, 0, 2), (CHROME, 1, 2)]);
    let mut all = at(Attribution::AllEvents);
    all.sort();
    assert_eq!(all, vec![(CHROME, 0, 2), (CHROME, 1, 2), (SAFARI, 0, 1)]);
    let mut step0 = at(Attribution::Step(0));
    step0.sort();
    assert_eq!(step0, vec![(CHROME, 0, 2), (CHROME, 1, 2), (SAFARI, 0, 2)]);
    let mut step1 = at(Attribution::Step(1));
    step1.sort();
    assert_eq!(
        step1,
        vec![
            (CHROME, 0, 2),
            (CHROME, 1, 2),
            (SAFARI, 0, 1),
            (SAFARI, 1, 2)
        ]
    );
}

// ---------------------------------------------------------------- windowFunnel

fn wf(window: i64, n: usize, rows: &[(i64, &[usize])], mode: WindowFunnelMode) -> u32 {
    let mut evs: Vec<(i64, u32)> = rows.iter().map(|&(t, c)| (t, bits(c))).collect();
    window_funnel(window, n, &mut evs, mode)
}

const DEFAULT: WindowFunnelMode = WindowFunnelMode {
    strict_order: false,
    strict_increase: false,
    strict_deduplication: false,
};

#[test]
fn window_funnel_modes_match_clickhouse() {
    // Values checked with chdb 4.4 (ClickHouse 26.9).
    let (a, b, c): (&[usize], &[usize], &[usize]) = (&[0], &[1], &[2]);
    let d: &[usize] = &[];
    let abdc = [(1, a), (2, b), (3, d), (4, c)];
    let strict_order = WindowFunnelMode {
        strict_order: true,
        ..DEFAULT
    };
    let dedup = WindowFunnelMode {
        strict_deduplication: true,
        ..DEFAULT
    };
    let increase = WindowFunnelMode {
        strict_increase: true,
        ..DEFAULT
    };
    assert_eq!(wf(10, 3, &abdc, strict_order), 2);
    assert_eq!(wf(10, 3, &abdc, DEFAULT), 3);
    assert_eq!(wf(10, 3, &[(1, a), (2, b), (3, b), (4, c)], dedup), 2);
    assert_eq!(wf(10, 3, &[(1, a), (2, a), (3, b)], dedup), 2);
    assert_eq!(wf(10, 2, &[(1, a), (1, b)], increase), 1);
    assert_eq!(wf(10, 2, &[(1, a), (1, b)], DEFAULT), 2);
    assert_eq!(wf(10, 2, &[(1, &[0, 1])], DEFAULT), 2);
    assert_eq!(wf(10, 2, &[(5, b), (5, a)], DEFAULT), 2);
    assert_eq!(wf(10, 2, &[(1, a), (11, b)], DEFAULT), 2);
    assert_eq!(wf(10, 2, &[(1, a), (12, b)], DEFAULT), 1);
    assert_eq!(
        wf(10, 3, &[(1, a), (2, b), (3, a), (4, c)], strict_order),
        3
    );
    assert_eq!(wf(10, 2, &[(1, d), (2, a), (3, b)], strict_order), 2);
    assert_eq!(wf(10, 3, &[(1, a), (2, c), (3, b)], strict_order), 1);
    assert_eq!(wf(10, 2, &[(1, a), (2, d), (2, b)], strict_order), 1);
    assert_eq!(wf(10, 2, &[], DEFAULT), 0);
    assert_eq!(wf(10, 2, &[(1, b)], DEFAULT), 0);
}

/// Reference: the longest chain of entries with condition k at non-decreasing timestamps,
/// all within `window` of the first (entries at one instant are ordered by condition).
fn window_funnel_reference(window: i64, n: usize, evs: &[(i64, u32)]) -> u32 {
    let mut best = 0;
    for &(start, m) in evs {
        if m & 1 == 0 {
            continue;
        }
        let mut level = 1;
        let mut t = start;
        for c in 1..n {
            let next = evs
                .iter()
                .filter(|e| e.1 & (1 << c) != 0 && e.0 >= t && e.0 - start <= window)
                .map(|e| e.0)
                .min();
            match next {
                Some(x) => {
                    t = x;
                    level += 1;
                }
                None => break,
            }
        }
        best = best.max(level);
    }
    best
}

// ---------------------------------------------------------------- Tally and bins

#[test]
fn tally_ranks_by_deepest_step_then_bd() {
    let mut t = Tally::new(2);
    let add = |t: &mut Tally, bd, level| {
        t.add(&Outcome {
            bd,
            level,
            step_ts: (0..level as i64).map(|k| k * SEC).collect(),
            skipped: 0,
        })
    };
    for (bd, level) in [(3, 1), (3, 1), (5, 2), (4, 2), (2, 1), (2, 1), (2, 1)] {
        add(&mut t, bd, level);
    }
    let res = t.finish(Some(2), false);
    let order: Vec<u32> = res.iter().map(|r| r.bd).collect();
    assert_eq!(order, vec![4, 5, OTHER_BD]);
    assert_eq!(counts(&res[2]), vec![5, 0]);
    assert_eq!(avgs(&res[0]), vec![None, Some(1.0)]);
}

#[test]
fn tally_ignores_zero_second_conversions() {
    let mut t = Tally::new(2);
    for gap in [0, 0, 10] {
        t.add(&Outcome {
            bd: 0,
            level: 2,
            step_ts: vec![0, gap * SEC],
            skipped: 0,
        });
    }
    let res = t.finish(None, false);
    assert_eq!(counts(&res[0]), vec![3, 3]);
    assert_eq!(avgs(&res[0]), vec![None, Some(10.0)]);
    assert_eq!(medians(&res[0]), vec![None, Some(10.0)]);
}

#[test]
fn time_to_convert_bins_rules() {
    // Custom bin count, clamped to 1..=90.
    assert_eq!(
        time_to_convert_bins(&[10.0, 20.0, 30.0], Some(2)),
        vec![(10.0, 1), (20.0, 1), (30.0, 1)]
    );
    assert_eq!(
        time_to_convert_bins(&[5.0], Some(0)),
        vec![(5.0, 1), (65.0, 0)]
    );
    assert_eq!(time_to_convert_bins(&[1.0; 3], Some(500)).len(), 91);
    // Auto: ceil(cbrt(8)) = 2 bins; the range is [floor(0.5), ceil(7.5)] = [0, 8], width 4,
    // and the max itself lands in the last entry only when it is a whole multiple.
    assert_eq!(
        time_to_convert_bins(&[0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.5], None),
        vec![(0.0, 4), (4.0, 4), (8.0, 0)]
    );
    assert_eq!(
        time_to_convert_bins(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0], None),
        vec![(0.0, 4), (4.0, 3), (8.0, 1)]
    );
    // Equal times: width 60 (two converters: ceil(cbrt(2)) = 2 bins).
    assert_eq!(
        time_to_convert_bins(&[42.0, 42.0], None),
        vec![(42.0, 2), (102.0, 0), (162.0, 0)]
    );
    // No converters.
    assert_eq!(time_to_convert_bins(&[], None), vec![(0.0, 0), (60.0, 0)]);
    // 27 converters: exactly 3 bins.
    let times: Vec<f64> = (0..27).map(|i| i as f64 * 10.0).collect();
    assert_eq!(time_to_convert_bins(&times, None).len(), 4);
}

// ---------------------------------------------------------------- properties

fn arb_events(n: usize) -> impl Strategy<Value = Vec<Ev>> {
    let steps = 1u32 << n;
    prop::collection::vec(
        (0i64..60, 0u32..steps, 0u32..4, 0u32..3).prop_map(|(t, steps, excl, bd)| Ev {
            ts: t * SEC,
            steps: if excl == 3 { 0 } else { steps },
            excl: if excl == 3 { 0b11 } else { 0 },
            bd,
        }),
        0..24,
    )
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (
        1usize..6,
        0usize..3,
        0i64..40,
        0usize..5,
        any::<bool>(),
        0u32..32,
    )
        .prop_flat_map(|(n, order, window, attr, has_breakdown, optional)| {
            let order = [Order::Ordered, Order::Strict, Order::Unordered][order];
            let exclusions = if n >= 2 {
                if order == Order::Unordered {
                    Just(vec![(0, n - 1), (0, n - 1)]).boxed()
                } else {
                    prop::collection::vec(
                        (0..n - 1).prop_flat_map(move |f| (Just(f), f + 1..n)),
                        0..3,
                    )
                    .boxed()
                }
            } else {
                Just(vec![]).boxed()
            };
            let attribution = match attr {
                0 => Attribution::FirstTouch,
                1 => Attribution::LastTouch,
                2 => Attribution::AllEvents,
                _ if order == Order::Unordered => Attribution::Step(0),
                _ => Attribution::Step(attr % n),
            };
            exclusions.prop_map(move |exclusions| Spec {
                order,
                num_steps: n,
                window_us: window * SEC,
                exclusions,
                attribution,
                has_breakdown,
                optional_steps: if order == Order::Unordered {
                    0
                } else {
                    optional
                },
            })
        })
}

proptest! {
    #[test]
    fn window_funnel_default_matches_reference(
        n in 1usize..5,
        window in 0i64..20,
        rows in prop::collection::vec((0i64..30, 0u32..16), 0..20),
    ) {
        let full = step_mask(n);
        let rows: Vec<(i64, u32)> = rows.into_iter().map(|(t, m)| (t, m & full)).collect();
        let mut evs = rows.clone();
        let got = window_funnel(window, n, &mut evs, WindowFunnelMode::default());
        prop_assert_eq!(got, window_funnel_reference(window, n, &rows));
    }

    #[test]
    fn window_funnel_strict_modes_never_exceed_default(
        n in 1usize..5,
        window in 0i64..20,
        rows in prop::collection::vec((0i64..30, 0u32..16), 0..20),
        flags in 0u8..8,
    ) {
        let mode = WindowFunnelMode {
            strict_order: flags & 1 != 0,
            strict_increase: flags & 2 != 0,
            strict_deduplication: flags & 4 != 0,
        };
        let base = window_funnel(window, n, &mut rows.clone(), WindowFunnelMode::default());
        let got = window_funnel(window, n, &mut rows.clone(), mode);
        prop_assert!(got <= base && got as usize <= n);
    }

    #[test]
    fn evaluate_is_total_and_order_independent(spec in arb_spec(), evs in arb_events(5)) {
        let n = spec.num_steps;
        let mut a = evs.clone();
        let out = evaluate(&spec, &mut a);
        for o in &out {
            prop_assert!((1..=n).contains(&o.level), "{:?}", o);
            prop_assert_eq!(o.step_ts.len(), o.level);
            prop_assert!(o.step_ts.windows(2).all(|w| w[0] <= w[1]));
            prop_assert_eq!(o.skipped & 1, 0);
        }
        if !spec.has_breakdown {
            prop_assert!(out.len() <= 1);
        }
        let mut b = evs.clone();
        b.reverse();
        prop_assert_eq!(&evaluate(&spec, &mut b), &out);
        let mut tally = Tally::new(n);
        out.iter().for_each(|o| tally.add(o));
        let series = tally.finish(Some(1), false);
        prop_assert!(series.iter().all(|s| s.steps.len() == n));
    }

    #[test]
    fn trends_are_total(spec in arb_spec(), evs in arb_events(5), to in 0usize..5) {
        let n = spec.num_steps;
        let out = evaluate_trends_detailed(&spec, &mut evs.clone(), &|t| t / (10 * SEC), to);
        prop_assert!(out.iter().all(|t| (1..=n).contains(&t.level)));
        let plain = evaluate_trends(&spec, &mut evs.clone(), &|t| t / (10 * SEC));
        prop_assert!(plain.windows(2).all(|w| w[0].0 < w[1].0));
        prop_assert!(plain.iter().all(|&(_, l)| (1..=n).contains(&l)));
    }
}
