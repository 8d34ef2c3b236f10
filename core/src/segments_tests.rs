use proptest::prelude::*;

use super::*;
use crate::compile::dates::ProjectTime;

proptest! {
    #[test]
    fn deltas_round_trip(mut v in proptest::collection::vec(any::<i64>(), 0..200), sort in any::<bool>()) {
        if sort {
            v.sort_unstable();
        }
        prop_assert_eq!(decode_deltas(&encode_deltas(&v), v.len()), Some(v));
    }

    #[test]
    fn fixed_width_round_trip(a in proptest::collection::vec(any::<u32>(), 0..100),
                              b in proptest::collection::vec(any::<i64>(), 0..100)) {
        prop_assert_eq!(decode_u32(&encode_u32(&a)), Some(a));
        prop_assert_eq!(decode_i64(&encode_i64(&b)), Some(b));
    }

    #[test]
    fn persons_index_their_dictionary(p in proptest::collection::vec(-50i64..50, 0..100)) {
        let (dict, ix) = person_columns(&p);
        prop_assert!(dict.windows(2).all(|w| w[0] < w[1]));
        let back: Vec<i64> = ix.iter().map(|&i| dict[i as usize]).collect();
        prop_assert_eq!(back, p);
    }

    /// The uncovered intervals and the covered days partition the range exactly.
    #[test]
    fn uncovered_complements_covered(from in -3i64..10, len in 0i64..8, days in proptest::collection::btree_set(-5i64..15, 0..10)) {
        let day = 86_400_000_000i64;
        let (from_us, to_us) = (from * day + 12_345, (from + len) * day + 777);
        let covered: Vec<i64> = days.into_iter().collect();
        let iv = uncovered_intervals(from_us, to_us, &covered);
        for t in [from_us - 1, from_us, from_us + 1, to_us - 1, to_us, to_us + 1]
            .into_iter()
            .chain((from - 1..from + len + 2).flat_map(|d| [d * day - 1, d * day, d * day + 1]))
        {
            let in_range = from_us <= t && t <= to_us;
            let in_covered = covered.contains(&utc_day(t));
            let in_iv = iv.iter().any(|&(lo, hi)| lo <= t && t < hi);
            prop_assert_eq!(in_iv, in_range && !in_covered, "t={}", t);
        }
    }
}

#[test]
fn truncated_deltas_are_rejected() {
    let bytes = encode_deltas(&[1, 1_000_000, 2_000_000_000_000]);
    assert_eq!(decode_deltas(&bytes[..bytes.len() - 1], 3), None);
    assert_eq!(decode_deltas(&bytes, 2), None);
    assert_eq!(decode_u32(&[1, 2, 3]), None);
}

#[test]
fn filters_over_dictionary_columns_only() {
    let mat = vec![("$browser".to_string(), "mat_$browser".to_string())];
    assert_eq!(
        referenced_columns(
            &[
                "(e.event = $3::text) AND (e.\"mat_$browser\" = $4::text)",
                "NULL::text"
            ],
            &mat
        ),
        Some(vec!["event".to_string(), "mat_$browser".to_string()])
    );
    assert_eq!(
        referenced_columns(&["TRUE", "NULL::text"], &mat),
        Some(vec![])
    );
    // The jsonb, the time, the person, a subquery: not answerable from the dictionaries.
    for sql in [
        "(e.properties ->> $3::text) = $4::text",
        "e.\"timestamp\" > $3::timestamptz",
        "e.person_id IN (SELECT 1)",
        "EXISTS (select 1 from insights.persons p)",
        "e.\"mat_$os\" = $3::text",
    ] {
        assert_eq!(referenced_columns(&[sql], &mat), None, "{sql}");
    }
    // Other aliases ending in `e` are not `e`.
    assert_eq!(referenced_columns(&["pgi_de.x = 1"], &mat), Some(vec![]));
}

#[test]
fn combination_statement_reads_the_dictionaries() {
    let sql = combo_sql(
        7,
        &["event".into(), "mat_$browser".into()],
        "(e.event = $1::text)",
        &["(e.\"mat_$browser\")::text".into()],
    );
    assert!(
        sql.contains("project_id = 7 AND column_name = 'event') pgi_c0"),
        "{sql}"
    );
    assert!(
        sql.contains("UNION ALL SELECT 0, NULL::text) pgi_c1"),
        "{sql}"
    );
    assert!(sql.ends_with("FROM (SELECT pgi_c0.id AS pgi_id0, pgi_c0.value AS \"event\", pgi_c1.id AS pgi_id1, pgi_c1.value AS \"mat_$browser\" FROM (SELECT id, value FROM insights.segment_dict WHERE project_id = 7 AND column_name = 'event') pgi_c0 CROSS JOIN (SELECT id, value FROM insights.segment_dict WHERE project_id = 7 AND column_name = 'mat_$browser' UNION ALL SELECT 0, NULL::text) pgi_c1) e"), "{sql}");
    let none = combo_sql(7, &[], "TRUE", &["(NULL::text)::text".into()]);
    assert_eq!(
        none,
        "SELECT (TRUE) IS TRUE, (NULL::text)::text FROM (SELECT 1 AS pgi_one FROM (SELECT 1) pgi_one) e"
    );
}

#[test]
fn bucketer_matches_bucket_start() {
    let pt = ProjectTime::new("America/New_York", 0).unwrap();
    let mut b = Bucketer::new(Some(Interval::Day), 0, &pt);
    // 2024-03-10 (a 23-hour local day) and around it, every 20 minutes.
    let start = 1_710_000_000_000_000i64;
    for k in 0..300 {
        let t = start + k * 1_200_000_000;
        let dt = Utc.timestamp_micros(t).unwrap();
        assert_eq!(
            b.bucket(t),
            dates::bucket_start(dt, Interval::Day, &pt).timestamp_micros()
        );
    }
    let mut total = Bucketer::new(None, 42, &pt);
    assert_eq!(total.bucket(start), 42);
}
