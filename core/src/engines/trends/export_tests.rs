use super::*;
use serde_json::json;

#[test]
fn one_row_per_item_and_a_column_per_label() {
    let result = json!([
        {"label": "$pageview", "action": {"custom_name": null}, "labels": ["9-Jan-2020", "10-Jan-2020"], "data": [1, 0.5]},
        {"label": "Chrome, \"new\"", "action": {"custom_name": ""}, "labels": ["9-Jan-2020", "10-Jan-2020"], "data": [2, 3]},
        {"label": "x", "action": {"custom_name": "Views"}, "labels": ["9-Jan-2020", "11-Jan-2020"], "data": [4, 5]},
        {"label": "Formula (A+B)", "action": null, "labels": ["9-Jan-2020", "10-Jan-2020"], "data": [0.3333333333333333, 0]},
    ]);
    assert_eq!(
        trends_csv(&result),
        "series,9-Jan-2020,10-Jan-2020\r\n\
         $pageview,1,0.5\r\n\
         \"Chrome, \"\"new\"\"\",2,3\r\n\
         Views,4,\r\n\
         Formula (A+B),0.3333333333333333,0\r\n"
    );
}

#[test]
fn empty_and_total_value_results() {
    assert_eq!(trends_csv(&json!([])), "series\r\n");
    let bold = json!([{"label": "$pageview", "action": {}, "labels": [], "data": [], "aggregated_value": 3}]);
    assert_eq!(trends_csv(&bold), "series\r\n$pageview\r\n");
}

#[test]
fn filename_like_posthog() {
    assert_eq!(
        trends_csv_filename(None, Some("2020-01-09"), "2020-01-19"),
        "export (2020-01-09 - 2020-01-19) from PostHog.csv"
    );
    assert_eq!(
        trends_csv_filename(Some("My Insight: Views!"), None, "2020-01-19"),
        "my-insight-views (up until 2020-01-19) from PostHog.csv"
    );
    assert_eq!(slugify("  --Hello   World__ "), "hello-world");
}
