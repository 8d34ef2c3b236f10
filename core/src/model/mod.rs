//! One typed model for the two ways PostHog accepts an insight query.
//!
//! PostHog takes an insight either as a legacy flat `filters` dict
//! (`{"insight":"FUNNELS","events":[…],"funnel_window_interval":14,…}`, where every value may be a
//! string because it came from a GET query string) or as a query node
//! (`{"kind":"FunnelsQuery","series":[…],"funnelsFilter":{…}}`, possibly wrapped in
//! `{"kind":"InsightVizNode","source":…}`). PostHog converts the first into the second
//! ("filter_to_query"); here both become one [`InsightQuery`], so every engine reads one shape.
//! [`InsightQuery::to_legacy_filter`] renders the model back as a legacy dict (the `filter` field
//! of trends results).
//!
//! Left raw on purpose: property filters, dates and HogQL stay JSON / strings here; the
//! `properties`, `dates` and `hogql` modules compile them, so this module does not depend on them.
//!
//! Error policy: unknown keys are ignored (as PostHog's legacy code does). A known key with a
//! wrong JSON type is rejected as [`QueryError::bad_json`], a well-typed but disallowed value as
//! [`QueryError::invalid`]; `attr` names the field the way the client spelled it (legacy
//! snake_case for legacy input, camelCase node names for nodes), nested PostHog-style as `a__b`
//! (`funnelsFilter__funnelWindowInterval`, `events__0__math`). Attrs of a wrapped
//! `InsightVizNode` are relative to its `source`. JSON `null` and `""` mean "not given" everywhere,
//! because GET query strings send empty parameters as `""`.

use serde_json::{Map, Value, json};

use crate::error::{QueryError, Result};

/// The most steps a funnel may have. PostHog's UI stops at 20 (there is no server-side limit we
/// could find); the guard keeps the per-person step machine and its bitmasks small.
pub const MAX_FUNNEL_STEPS: usize = 20;

/// The most series (events and actions) an insight may have. PostHog has no server-side limit we
/// could find (its formulas name series A..Z); ours keeps one request from planning hundreds of
/// scans, each of which is a pass over the events.
pub const MAX_SERIES: usize = 50;

/// The most dimensions of a multi-breakdown: PostHog's schema (`BreakdownFilter.breakdowns`,
/// `max_length=3`).
pub const MAX_BREAKDOWNS: usize = 3;

/// The largest `breakdown_limit`, and the most cohorts of a cohort breakdown. PostHog caps the
/// limit silently (newer releases); we answer 400 so a client learns why it got fewer values.
pub const MAX_BREAKDOWN_LIMIT: u32 = 1000;

/// Default conversion window, in `window_unit`s (docs/funnels.md#input).
pub const DEFAULT_FUNNEL_WINDOW_INTERVAL: i64 = 14;

/// Default number of retention intervals (docs/retention.md#input).
pub const DEFAULT_RETENTION_INTERVALS: u32 = 11;

/// Every `math` name we accept on a series (docs/trends.md#maths plus PostHog's funnel maths).
pub const MATH_NAMES: &[&str] = &[
    "total",
    "dau",
    "weekly_active",
    "monthly_active",
    "unique_group",
    "unique_session",
    "first_time_for_user",
    "first_time_for_user_with_filters",
    "first_matching_event_for_user",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "p25",
    "p75",
    "p90",
    "p95",
    "p99",
    "avg_count_per_actor",
    "min_count_per_actor",
    "max_count_per_actor",
    "median_count_per_actor",
    "p75_count_per_actor",
    "p90_count_per_actor",
    "p95_count_per_actor",
    "p99_count_per_actor",
    "hogql",
];

/// Maths that aggregate `math_property` and therefore need it.
const PROPERTY_MATHS: &[&str] = &[
    "sum", "avg", "min", "max", "median", "p25", "p75", "p90", "p95", "p99",
];

/// Maths stickiness can use: they choose the actor. PostHog's legacy conversion turns any other
/// stickiness math into `dau`.
const STICKINESS_MATHS: &[&str] = &[
    "dau",
    "weekly_active",
    "monthly_active",
    "unique_group",
    "hogql",
];

/// Trends intervals (docs/dates.md#intervals-and-buckets).
pub const INTERVAL_NAMES: &[&str] = &["minute", "hour", "day", "week", "month"];

/// Conversion-window units (docs/dates.md#funnel-conversion-windows).
pub const WINDOW_UNIT_NAMES: &[&str] = &["second", "minute", "hour", "day", "week", "month"];

/// Breakdown types (docs/funnels.md#breakdowns-and-attribution, docs/trends.md#breakdowns).
pub const BREAKDOWN_TYPE_NAMES: &[&str] = &[
    "event",
    "person",
    "group",
    "cohort",
    "session",
    "hogql",
    "event_metadata",
    "data_warehouse",
    "data_warehouse_person_property",
];

/// Trends display types (PostHog's `ChartDisplayType`).
pub const DISPLAY_NAMES: &[&str] = &[
    "ActionsLineGraph",
    "ActionsBar",
    "ActionsUnstackedBar",
    "ActionsStackedBar",
    "ActionsAreaGraph",
    "ActionsLineGraphCumulative",
    "BoldNumber",
    "ActionsPie",
    "ActionsBarValue",
    "ActionsTable",
    "WorldMap",
    "CalendarHeatmap",
];

/// Displays that aggregate the whole range into one number per series (docs/trends.md#displays).
const TOTAL_VALUE_DISPLAYS: &[&str] = &[
    "BoldNumber",
    "ActionsPie",
    "ActionsBarValue",
    "ActionsTable",
    "WorldMap",
    "CalendarHeatmap",
];

/// Path item types (`includeEventTypes`).
pub const PATH_TYPE_NAMES: &[&str] = &["$pageview", "$screen", "custom_event", "hogql"];

/// Lifecycle statuses (`toggledLifecycles`).
pub const LIFECYCLE_NAMES: &[&str] = &["new", "returning", "resurrecting", "dormant"];

/// Stickiness criteria operators.
pub const STICKINESS_OPERATOR_NAMES: &[&str] = &["gte", "lte", "exact"];

/// Funnel path types (`funnelPathsFilter.funnelPathType`, legacy `funnel_paths`), read by
/// `engines::paths::funnel_paths`.
pub const FUNNEL_PATH_TYPE_NAMES: &[&str] = &[
    "funnel_path_after_step",
    "funnel_path_before_step",
    "funnel_path_between_steps",
];

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// The six insight kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum InsightKind {
    #[default]
    Trends,
    Funnels,
    Retention,
    Paths,
    Stickiness,
    Lifecycle,
}

impl InsightKind {
    pub const ALL: [InsightKind; 6] = [
        InsightKind::Trends,
        InsightKind::Funnels,
        InsightKind::Retention,
        InsightKind::Paths,
        InsightKind::Stickiness,
        InsightKind::Lifecycle,
    ];

    /// The legacy `insight` value, e.g. `"FUNNELS"`.
    pub fn legacy_name(self) -> &'static str {
        match self {
            InsightKind::Trends => "TRENDS",
            InsightKind::Funnels => "FUNNELS",
            InsightKind::Retention => "RETENTION",
            InsightKind::Paths => "PATHS",
            InsightKind::Stickiness => "STICKINESS",
            InsightKind::Lifecycle => "LIFECYCLE",
        }
    }

    /// The query node `kind`, e.g. `"FunnelsQuery"`.
    pub fn node_kind(self) -> &'static str {
        match self {
            InsightKind::Trends => "TrendsQuery",
            InsightKind::Funnels => "FunnelsQuery",
            InsightKind::Retention => "RetentionQuery",
            InsightKind::Paths => "PathsQuery",
            InsightKind::Stickiness => "StickinessQuery",
            InsightKind::Lifecycle => "LifecycleQuery",
        }
    }

    /// Parse a legacy `insight` value (any case). `SESSIONS` is an old alias of trends.
    pub fn from_legacy_name(s: &str) -> Option<Self> {
        if s.trim().eq_ignore_ascii_case("SESSIONS") {
            return Some(InsightKind::Trends);
        }
        Self::ALL
            .into_iter()
            .find(|k| k.legacy_name().eq_ignore_ascii_case(s.trim()))
    }

    /// Parse a node `kind` (exact spelling, as PostHog's schema).
    pub fn from_node_kind(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.node_kind() == s)
    }

    /// Whether the insight reads `series` (retention and paths have their own entities).
    pub fn has_series(self) -> bool {
        !matches!(self, InsightKind::Retention | InsightKind::Paths)
    }

    /// Whether a breakdown applies (PostHog: trends and funnels; retention in newer versions).
    fn has_breakdown(self) -> bool {
        matches!(
            self,
            InsightKind::Trends | InsightKind::Funnels | InsightKind::Retention
        )
    }

    /// Whether compare applies (trends, stickiness, and funnel trends in newer PostHog).
    fn has_compare(self) -> bool {
        matches!(
            self,
            InsightKind::Trends | InsightKind::Funnels | InsightKind::Stickiness
        )
    }

    /// The node key holding this kind's options, e.g. `funnelsFilter`.
    fn node_filter_key(self) -> &'static str {
        match self {
            InsightKind::Trends => "trendsFilter",
            InsightKind::Funnels => "funnelsFilter",
            InsightKind::Retention => "retentionFilter",
            InsightKind::Paths => "pathsFilter",
            InsightKind::Stickiness => "stickinessFilter",
            InsightKind::Lifecycle => "lifecycleFilter",
        }
    }

    const LEGACY_NAMES: &'static [&'static str] = &[
        "TRENDS",
        "FUNNELS",
        "RETENTION",
        "PATHS",
        "STICKINESS",
        "LIFECYCLE",
    ];
    const NODE_NAMES: &'static [&'static str] = &[
        "TrendsQuery",
        "FunnelsQuery",
        "RetentionQuery",
        "PathsQuery",
        "StickinessQuery",
        "LifecycleQuery",
    ];
}

/// Defines a closed set of PostHog string values: the enum, its spellings, and a parser that
/// accepts any letter case (GET parameters and hand-written filters are not consistent about it).
macro_rules! choice_enum {
    ($(#[$meta:meta])* $name:ident default $default:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl Default for $name {
            fn default() -> Self { $name::$default }
        }

        impl $name {
            /// Every accepted value, spelled as PostHog spells it.
            pub const NAMES: &'static [&'static str] = &[$($text),+];
            const VALUES: &'static [$name] = &[$($name::$variant),+];

            /// The value as PostHog spells it.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parse PostHog's spelling, ignoring letter case and surrounding blanks.
            pub fn parse(s: &str) -> Option<Self> {
                let i = Self::NAMES.iter().position(|n| n.eq_ignore_ascii_case(s.trim()))?;
                Self::VALUES.get(i).copied()
            }
        }
    };
}

choice_enum!(
    /// Funnel step order (docs/funnels.md#step-orders).
    FunnelOrder default Ordered { Ordered => "ordered", Strict => "strict", Unordered => "unordered" }
);
choice_enum!(
    /// Funnel visualisation: step counts, conversion over time, or time-to-convert histogram.
    FunnelViz default Steps { Steps => "steps", Trends => "trends", TimeToConvert => "time_to_convert" }
);
choice_enum!(
    /// Which event's breakdown value labels a person in a funnel
    /// (docs/funnels.md#breakdowns-and-attribution).
    AttributionType default FirstTouch {
        FirstTouch => "first_touch", LastTouch => "last_touch", AllEvents => "all_events", Step => "step"
    }
);
choice_enum!(
    /// Conversion rates relative to the first step (`total`) or the previous one.
    StepReference default Total { Total => "total", Previous => "previous" }
);
choice_enum!(
    /// How retention assigns people to cohorts (docs/retention.md#cohorts).
    RetentionType default Recurring {
        Recurring => "retention_recurring",
        FirstTime => "retention_first_time",
        FirstEverOccurrence => "retention_first_ever_occurrence",
    }
);
choice_enum!(
    /// Retention period; PostHog spells these capitalised.
    RetentionPeriod default Day { Hour => "Hour", Day => "Day", Week => "Week", Month => "Month" }
);
choice_enum!(
    /// Retention percentages relative to the cohort size or the previous period.
    RetentionReference default Total { Total => "total", Previous => "previous" }
);
choice_enum!(
    /// Stickiness: actors active in exactly k buckets, or in at least k
    /// (docs/insights.md#stickiness).
    StickinessComputation default NonCumulative { NonCumulative => "non_cumulative", Cumulative => "cumulative" }
);

/// What a series step (or exclusion, or retention entity) matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntityKind {
    /// An event by name; `None` is PostHog's "All events".
    Event { name: Option<String> },
    /// A saved action by id.
    Action { id: i64 },
}

/// One series entry: an event or action with its display names, math and own filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub kind: EntityKind,
    pub name: Option<String>,
    pub custom_name: Option<String>,
    /// One of [`MATH_NAMES`]; `None` means the kind's default (`total` in trends).
    pub math: Option<String>,
    pub math_property: Option<String>,
    pub math_group_type_index: Option<u8>,
    pub math_hogql: Option<String>,
    /// Raw property filters (a list or a group), compiled by the `properties` module.
    pub properties: Value,
    /// Funnels only: the step may be skipped.
    pub optional_in_funnel: bool,
}

impl Entity {
    /// An entity with no names, math or filters.
    pub fn new(kind: EntityKind) -> Self {
        Entity {
            kind,
            name: None,
            custom_name: None,
            math: None,
            math_property: None,
            math_group_type_index: None,
            math_hogql: None,
            properties: Value::Array(Vec::new()),
            optional_in_funnel: false,
        }
    }

    /// The named event.
    pub fn event(name: &str) -> Self {
        Entity::new(EntityKind::Event {
            name: Some(name.to_string()),
        })
    }

    /// "All events".
    pub fn all_events() -> Self {
        Entity::new(EntityKind::Event { name: None })
    }

    /// The saved action `id`.
    pub fn action(id: i64) -> Self {
        Entity::new(EntityKind::Action { id })
    }

    /// The legacy entity dict (`{"id","type","order","name",…}`), as in trends' `action` field.
    pub fn to_legacy(&self, order: Option<usize>) -> Value {
        let (id, entity_type) = match &self.kind {
            EntityKind::Event { name } => (json!(name), "events"),
            EntityKind::Action { id } => (json!(id), "actions"),
        };
        let mut m = Map::new();
        m.insert("id".into(), id);
        m.insert("type".into(), json!(entity_type));
        if let Some(order) = order {
            m.insert("order".into(), json!(order));
        }
        m.insert("name".into(), json!(self.name));
        m.insert("custom_name".into(), json!(self.custom_name));
        m.insert("math".into(), json!(self.math));
        m.insert("math_property".into(), json!(self.math_property));
        m.insert(
            "math_group_type_index".into(),
            json!(self.math_group_type_index),
        );
        m.insert("math_hogql".into(), json!(self.math_hogql));
        m.insert("properties".into(), self.properties.clone());
        if self.optional_in_funnel {
            m.insert("optionalInFunnel".into(), json!(true));
        }
        Value::Object(m)
    }
}

/// A cohort in a cohort breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CohortRef {
    /// `"all"`: all users (PostHog reports it as cohort id 0).
    All,
    Id(i64),
}

/// What one breakdown dimension reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakdownProperty {
    /// A property key, or the expression for `hogql` breakdowns.
    Property(String),
    /// Cohort breakdowns: one series per cohort.
    Cohorts(Vec<CohortRef>),
}

/// One breakdown dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakdownSpec {
    pub property: BreakdownProperty,
    /// One of [`BREAKDOWN_TYPE_NAMES`]; `event` by default.
    pub kind: String,
    /// Required for `group` breakdowns.
    pub group_type_index: Option<u8>,
    pub histogram_bin_count: Option<u32>,
    pub normalize_url: bool,
}

/// The breakdown: one dimension, or several for multi-breakdowns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breakdown {
    pub values: Vec<BreakdownSpec>,
    /// `None`: the engine's default (25: docs/funnels.md#breakdowns-and-attribution,
    /// docs/trends.md#breakdowns).
    pub limit: Option<u32>,
    /// Drop the "Other" series.
    pub hide_other: bool,
}

/// Compare with a previous period (docs/trends.md#compare).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compare {
    /// A relative date such as `-1w` to shift by; `None` means the preceding equal-length period.
    pub compare_to: Option<String>,
}

/// A funnel exclusion: persons doing `entity` between steps `from_step` and `to_step` are dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    pub entity: Entity,
    pub from_step: usize,
    pub to_step: usize,
}

/// Funnel options (docs/funnels.md#input); `Default` gives PostHog's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelOptions {
    pub order: FunnelOrder,
    pub viz: FunnelViz,
    /// Conversion window length, in `window_unit`s; at least 1.
    pub window_interval: i64,
    /// One of [`WINDOW_UNIT_NAMES`], singular and lower-case.
    pub window_unit: String,
    pub exclusions: Vec<Exclusion>,
    pub attribution: AttributionType,
    /// The step index for `attribution == Step`.
    pub attribution_value: Option<u32>,
    /// Conversion measured from / to these 0-based steps (time-to-convert, funnel trends).
    pub from_step: Option<usize>,
    pub to_step: Option<usize>,
    pub bin_count: Option<u32>,
    pub step_reference: StepReference,
}

impl Default for FunnelOptions {
    fn default() -> Self {
        FunnelOptions {
            order: FunnelOrder::Ordered,
            viz: FunnelViz::Steps,
            window_interval: DEFAULT_FUNNEL_WINDOW_INTERVAL,
            window_unit: "day".to_string(),
            exclusions: Vec::new(),
            attribution: AttributionType::FirstTouch,
            attribution_value: None,
            from_step: None,
            to_step: None,
            bin_count: None,
            step_reference: StepReference::Total,
        }
    }
}

impl FunnelOptions {
    /// The conversion window in seconds: absolute, so a month is 31 days and DST is ignored
    /// (docs/dates.md#funnel-conversion-windows). Saturates rather than overflowing on absurd
    /// intervals.
    pub fn window_seconds(&self) -> i64 {
        let unit: i64 = match self.window_unit.as_str() {
            "second" => 1,
            "minute" => 60,
            "hour" => 3_600,
            "week" => 7 * 86_400,
            "month" => 31 * 86_400,
            _ => 86_400,
        };
        self.window_interval.saturating_mul(unit)
    }
}

/// A trends formula, e.g. `A+2*B`, with an optional display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formula {
    pub formula: String,
    pub custom_name: Option<String>,
}

/// Trends options (docs/trends.md#input); `Default` gives PostHog's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendsOptions {
    /// One of [`DISPLAY_NAMES`]; `ActionsLineGraph` by default.
    pub display: String,
    /// Legacy `formula`, or node `formula` / `formulas` / `formulaNodes`.
    pub formulas: Vec<Formula>,
    /// At least 1; 1 means no smoothing.
    pub smoothing_intervals: u32,
}

impl Default for TrendsOptions {
    fn default() -> Self {
        TrendsOptions {
            display: "ActionsLineGraph".to_string(),
            formulas: Vec::new(),
            smoothing_intervals: 1,
        }
    }
}

impl TrendsOptions {
    /// Whether the display aggregates the whole range into one value (docs/trends.md#displays).
    pub fn is_total_value(&self) -> bool {
        TOTAL_VALUE_DISPLAYS.contains(&self.display.as_str())
    }

    /// Whether the display is cumulative (docs/trends.md#displays).
    pub fn is_cumulative(&self) -> bool {
        self.display == "ActionsLineGraphCumulative"
    }
}

/// Retention options (docs/retention.md#input); `Default` gives PostHog's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionOptions {
    pub target_entity: Entity,
    pub returning_entity: Entity,
    pub retention_type: RetentionType,
    pub period: RetentionPeriod,
    /// At least 1.
    pub total_intervals: u32,
    pub cumulative: bool,
    /// At least 1.
    pub minimum_occurrences: u32,
    pub reference: RetentionReference,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        RetentionOptions {
            target_entity: Entity::event("$pageview"),
            returning_entity: Entity::event("$pageview"),
            retention_type: RetentionType::Recurring,
            period: RetentionPeriod::Day,
            total_intervals: DEFAULT_RETENTION_INTERVALS,
            cumulative: false,
            minimum_occurrences: 1,
            reference: RetentionReference::Total,
        }
    }
}

/// A local path-cleaning rule: `regex` matches are replaced with `alias`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCleaningFilter {
    pub regex: String,
    pub alias: String,
}

/// Paths options (docs/insights.md#paths); `Default` gives PostHog's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct PathsOptions {
    /// Subset of [`PATH_TYPE_NAMES`]; empty means every event name.
    pub include_event_types: Vec<String>,
    pub start_point: Option<String>,
    pub end_point: Option<String>,
    pub step_limit: u32,
    pub path_groupings: Vec<String>,
    pub exclude_events: Vec<String>,
    pub edge_limit: u32,
    pub min_edge_weight: Option<u32>,
    pub max_edge_weight: Option<u32>,
    pub local_path_cleaning_filters: Vec<PathCleaningFilter>,
    /// Apply the team's path-cleaning rules.
    pub path_replacements: bool,
    pub hogql_expression: Option<String>,
    /// Funnel paths, raw and node-shaped: `{"funnelPathType","funnelSource","funnelStep"}`. A
    /// legacy `funnel_paths` + `funnel_filter` pair is reshaped into it; `funnelSource` (a funnel
    /// query in either form) can be parsed with [`parse_query_as`].
    pub funnel_paths: Option<Value>,
}

impl Default for PathsOptions {
    fn default() -> Self {
        PathsOptions {
            include_event_types: Vec::new(),
            start_point: None,
            end_point: None,
            step_limit: 5,
            path_groupings: Vec::new(),
            exclude_events: Vec::new(),
            edge_limit: 50,
            min_edge_weight: None,
            max_edge_weight: None,
            local_path_cleaning_filters: Vec::new(),
            path_replacements: false,
            hogql_expression: None,
            funnel_paths: None,
        }
    }
}

/// "Active" in a stickiness bucket means `operator value` events there
/// (docs/insights.md#stickiness; PostHog's stickiness test case SK10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickinessCriteria {
    /// One of [`STICKINESS_OPERATOR_NAMES`].
    pub operator: String,
    pub value: i64,
}

/// Stickiness options (docs/insights.md#stickiness).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StickinessOptions {
    pub computed_as: StickinessComputation,
    pub criteria: Option<StickinessCriteria>,
}

/// Lifecycle options (docs/insights.md#lifecycle). Display-only: the engine always computes all
/// four statuses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LifecycleOptions {
    /// Subset of [`LIFECYCLE_NAMES`].
    pub toggled_lifecycles: Option<Vec<String>>,
}

/// One insight query, whichever form it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightQuery {
    pub kind: InsightKind,
    /// Steps / series in order (empty for retention and paths).
    pub series: Vec<Entity>,
    /// Raw date strings for the `dates` module; `None` means its default.
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub explicit_date: bool,
    /// One of [`INTERVAL_NAMES`]; `None` means the engine's default (`day`).
    pub interval: Option<String>,
    /// At least 1; more than 1 is rejected for `week`.
    pub interval_count: u32,
    /// Raw global property filters (a list or a group); `[]` when absent.
    pub properties: Value,
    pub filter_test_accounts: bool,
    pub breakdown: Option<Breakdown>,
    pub compare: Option<Compare>,
    /// Aggregate by group type 0–4 instead of persons.
    pub aggregation_group_type_index: Option<u8>,
    /// Funnels: a HogQL expression to aggregate by (e.g. `properties.$session_id`).
    pub aggregate_by_hogql: Option<String>,
    pub funnel: FunnelOptions,
    pub trends: TrendsOptions,
    pub retention: RetentionOptions,
    pub paths: PathsOptions,
    pub stickiness: StickinessOptions,
    pub lifecycle: LifecycleOptions,
}

impl InsightQuery {
    /// An empty query of `kind` with every option at PostHog's default.
    pub fn new(kind: InsightKind) -> Self {
        InsightQuery {
            kind,
            series: Vec::new(),
            date_from: None,
            date_to: None,
            explicit_date: false,
            interval: None,
            interval_count: 1,
            properties: Value::Array(Vec::new()),
            filter_test_accounts: false,
            breakdown: None,
            compare: None,
            aggregation_group_type_index: None,
            aggregate_by_hogql: None,
            funnel: FunnelOptions::default(),
            trends: TrendsOptions::default(),
            retention: RetentionOptions::default(),
            paths: PathsOptions::default(),
            stickiness: StickinessOptions::default(),
            lifecycle: LifecycleOptions::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Parse an insight query in either form; a legacy filter without `insight` is a trends query
/// (PostHog's default). Funnels are validated ([`InsightQuery::validate_funnel`]).
pub fn parse_query(v: &Value) -> Result<InsightQuery> {
    parse_query_as(v, InsightKind::Trends)
}

/// Parse an insight query in either form. `default_kind` is used for a legacy filter without an
/// `insight` key (the legacy endpoints `/insights/funnel`, `/insights/trend`, … pass theirs); an
/// explicit `insight`, or a node's `kind`, wins. A JSON string holding the query (even encoded
/// twice, as some stored PostHog insights are) is decoded first.
pub fn parse_query_as(v: &Value, default_kind: InsightKind) -> Result<InsightQuery> {
    let decoded;
    let v = match v {
        Value::String(s) => {
            decoded = decode_query_string(s)?;
            &decoded
        }
        _ => v,
    };
    // Some stored PostHog filters are wrapped in a one-element list; PostHog takes `filter[0]`.
    let v = match v {
        Value::Array(a) if a.len() == 1 && a[0].is_object() => &a[0],
        _ => v,
    };
    let Value::Object(m) = v else {
        return Err(QueryError::bad_json(
            None,
            format!(
                "Expected a JSON object for the query but got type \"{}\".",
                type_name(v)
            ),
        ));
    };
    match get(m, "kind") {
        None => parse_legacy(m, default_kind),
        Some(kind) if kind.as_str() == Some("InsightVizNode") => match get(m, "source") {
            Some(Value::Object(source)) => parse_node(source),
            Some(other) => Err(expected_dict("source", other)),
            None => Err(QueryError::invalid(
                "source".to_string(),
                "This field is required.",
            )),
        },
        Some(_) => parse_node(m),
    }
}

/// Decode a query that arrived as a JSON string; PostHog has stored insights encoded twice.
fn decode_query_string(s: &str) -> Result<Value> {
    let malformed = |e: serde_json::Error| {
        QueryError::bad_json(None, format!("The query is not valid JSON: {e}"))
    };
    let v: Value = serde_json::from_str(s).map_err(malformed)?;
    match v {
        Value::String(inner) => serde_json::from_str(&inner).map_err(malformed),
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------------
// Legacy filters
// ---------------------------------------------------------------------------------------------

fn parse_legacy(m: &Map<String, Value>, default_kind: InsightKind) -> Result<InsightQuery> {
    let kind = match get(m, "insight") {
        Some(v) => parse_choice(
            v,
            "insight",
            InsightKind::LEGACY_NAMES,
            InsightKind::from_legacy_name,
        )?,
        None => default_kind,
    };
    let kind = shown_as_kind(m, kind)?;
    let mut q = InsightQuery::new(kind);
    if kind.has_series() {
        q.series = legacy_series(m, kind)?;
    }
    // A legacy lifecycle reads its first series only (PostHog's `filter.entities[0]`).
    if kind == InsightKind::Lifecycle {
        q.series.truncate(1);
    }
    q.date_from = opt_str(m, "date_from")?;
    q.date_to = opt_str(m, "date_to")?;
    q.explicit_date = opt_bool(m, "explicit_date")?.unwrap_or(false);
    q.interval =
        opt_choice(m, "interval", INTERVAL_NAMES, name_parser(INTERVAL_NAMES))?.map(str::to_string);
    q.interval_count = opt_u32(m, "interval_count", 1)?.unwrap_or(1);
    check_interval_count(&q, "interval_count")?;
    q.properties = opt_properties(m, "properties")?;
    q.filter_test_accounts = opt_bool(m, "filter_test_accounts")?.unwrap_or(false);
    if kind.has_breakdown() {
        q.breakdown = parse_breakdown(m)?;
    }
    if kind.has_compare() {
        q.compare = parse_compare(m)?;
    }
    q.aggregation_group_type_index = opt_group_index(m, "aggregation_group_type_index")?;
    q.aggregate_by_hogql = opt_str(m, "funnel_aggregate_by_hogql")?;
    match kind {
        InsightKind::Trends => q.trends = parse_trends(m, &LEGACY_TRENDS, Form::Legacy)?,
        InsightKind::Funnels => {
            q.funnel = parse_funnel(m, &LEGACY_FUNNEL, legacy_exclusion_entity)?;
            // Before `funnel_viz_type` existed, funnel trends were sent as display ActionsLineGraph
            // (PostHog's filter_to_query keeps honouring that).
            let display = get(m, "display").and_then(Value::as_str);
            if get(m, "funnel_viz_type").is_none() && display == Some("ActionsLineGraph") {
                q.funnel.viz = FunnelViz::Trends;
            }
        }
        InsightKind::Retention => q.retention = parse_retention(m, &LEGACY_RETENTION)?,
        InsightKind::Paths => {
            q.paths = parse_paths(m, &LEGACY_PATHS)?;
            q.paths.funnel_paths = legacy_funnel_paths(m)?;
            // The older single `path_type` is `include_event_types: [path_type]`.
            if q.paths.include_event_types.is_empty()
                && let Some(t) = opt_choice(
                    m,
                    "path_type",
                    PATH_TYPE_NAMES,
                    name_parser(PATH_TYPE_NAMES),
                )?
            {
                q.paths.include_event_types = vec![t.to_string()];
            }
        }
        InsightKind::Stickiness => q.stickiness = parse_stickiness(m, &LEGACY_STICKINESS)?,
        InsightKind::Lifecycle => {
            let key = if m.contains_key("toggledLifecycles") {
                "toggledLifecycles"
            } else {
                "toggled_lifecycles"
            };
            q.lifecycle = parse_lifecycle(m, key)?;
        }
    }
    if kind == InsightKind::Funnels {
        q.validate_funnel_in(Form::Legacy)?;
    }
    check_sizes(&q, Form::Legacy)?;
    Ok(q)
}

/// `shown_as: Stickiness | Lifecycle` on a trends filter (no `insight`, or `TRENDS`) selects that
/// insight, as PostHog's legacy `/insights/trend/` does; any other value keeps the kind.
fn shown_as_kind(m: &Map<String, Value>, kind: InsightKind) -> Result<InsightKind> {
    if kind != InsightKind::Trends {
        return Ok(kind);
    }
    Ok(match opt_str(m, "shown_as")?.as_deref() {
        Some("Stickiness") => InsightKind::Stickiness,
        Some("Lifecycle") => InsightKind::Lifecycle,
        _ => kind,
    })
}

/// Legacy `events` and `actions` merged into one series ordered by `order`. An entity without
/// `order` takes its position in its own list; ties keep actions before events (PostHog
/// concatenates actions first). PostHog itself sorts a missing `order` (and 0) first; the two
/// agree whenever every entity has an order or none has.
fn legacy_series(m: &Map<String, Value>, kind: InsightKind) -> Result<Vec<Entity>> {
    let mut keyed: Vec<(i64, usize, Entity)> = Vec::new();
    for (list_key, is_action) in [("actions", true), ("events", false)] {
        let Some(items) = opt_list(m, list_key)? else {
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let (entity, order) = legacy_entity(item, is_action, kind)
                .map_err(|e| e.within(&i.to_string()).within(list_key))?;
            let position = i64::try_from(i).unwrap_or(i64::MAX);
            keyed.push((order.unwrap_or(position), keyed.len(), entity));
        }
    }
    keyed.sort_by_key(|(order, seq, _)| (*order, *seq));
    Ok(keyed.into_iter().map(|(_, _, e)| e).collect())
}

/// One legacy entity `{id, type, order, name, custom_name, math…, properties}`; its list decides
/// whether it is an event or an action (PostHog ignores the inner `type` there).
fn legacy_entity(v: &Value, is_action: bool, kind: InsightKind) -> Result<(Entity, Option<i64>)> {
    let m = as_object(v, None)?;
    let entity_kind = if is_action {
        EntityKind::Action {
            id: required_int(&m, "id")?,
        }
    } else {
        EntityKind::Event {
            name: opt_str(&m, "id")?,
        }
    };
    let order = opt_int(&m, "order", i64::MIN, i64::MAX)?;
    let mut entity = entity_common(&m, entity_kind, &["optionalInFunnel", "optional_in_funnel"])?;
    // PostHog's legacy conversion gives stickiness the default actor math when the stored math
    // cannot choose an actor (e.g. `sum` left over from a trends insight).
    if kind == InsightKind::Stickiness
        && entity
            .math
            .as_deref()
            .is_some_and(|math| !STICKINESS_MATHS.contains(&math))
    {
        entity.math = Some("dau".to_string());
    }
    check_math_arguments(&entity, kind)?;
    Ok((entity, order))
}

/// A legacy exclusion's entity: `{id, type: events|actions, name, properties}`.
fn legacy_exclusion_entity(m: &Map<String, Value>) -> Result<Entity> {
    let is_action = match get(m, "type") {
        Some(t) => {
            parse_choice(
                t,
                "type",
                &["events", "actions"],
                name_parser(&["events", "actions"]),
            )? == "actions"
        }
        None => false,
    };
    let kind = if is_action {
        EntityKind::Action {
            id: required_int(m, "id")?,
        }
    } else {
        EntityKind::Event {
            name: opt_str(m, "id")?,
        }
    };
    entity_common(m, kind, &[])
}

/// Legacy funnel paths (`funnel_paths` + `funnel_filter`) reshaped as a node `funnelPathsFilter`.
fn legacy_funnel_paths(m: &Map<String, Value>) -> Result<Option<Value>> {
    let Some(path_type) = opt_str(m, "funnel_paths")? else {
        return Ok(None);
    };
    // PostHog's UI sends funnel_filter as JSON text in GET query strings.
    let source = match get(m, "funnel_filter") {
        Some(Value::String(s)) if s.trim_start().starts_with('{') => {
            match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(o)) => Some(o),
                _ => {
                    return Err(QueryError::invalid(
                        "funnel_filter".to_string(),
                        "funnel_filter must be a JSON object.",
                    ));
                }
            }
        }
        _ => opt_object(m, "funnel_filter")?,
    };
    let step = source
        .as_ref()
        .and_then(|s| s.get("funnel_step"))
        .cloned()
        .unwrap_or(Value::Null);
    Ok(Some(json!({
        "funnelPathType": path_type,
        "funnelSource": source.map(Value::Object).unwrap_or(Value::Null),
        "funnelStep": step,
    })))
}

// ---------------------------------------------------------------------------------------------
// Query nodes
// ---------------------------------------------------------------------------------------------

fn parse_node(m: &Map<String, Value>) -> Result<InsightQuery> {
    let kind = match get(m, "kind") {
        Some(v) => parse_choice(
            v,
            "kind",
            InsightKind::NODE_NAMES,
            InsightKind::from_node_kind,
        )?,
        None => {
            return Err(QueryError::invalid(
                "kind".to_string(),
                "This field is required.",
            ));
        }
    };
    let mut q = InsightQuery::new(kind);
    if kind.has_series()
        && let Some(items) = opt_list(m, "series")?
    {
        for (i, item) in items.iter().enumerate() {
            let entity =
                node_entity(item, kind).map_err(|e| e.within(&i.to_string()).within("series"))?;
            q.series.push(entity);
        }
    }
    if let Some(range) = opt_object(m, "dateRange")? {
        let within = |e: QueryError| e.within("dateRange");
        q.date_from = opt_str(&range, "date_from").map_err(within)?;
        q.date_to = opt_str(&range, "date_to").map_err(within)?;
        q.explicit_date = opt_bool(&range, "explicitDate")
            .map_err(within)?
            .unwrap_or(false);
    }
    q.interval =
        opt_choice(m, "interval", INTERVAL_NAMES, name_parser(INTERVAL_NAMES))?.map(str::to_string);
    q.interval_count = opt_u32(m, "intervalCount", 1)?.unwrap_or(1);
    check_interval_count(&q, "intervalCount")?;
    q.properties = opt_properties(m, "properties")?;
    q.filter_test_accounts = opt_bool(m, "filterTestAccounts")?.unwrap_or(false);

    let filter_key = kind.node_filter_key();
    let options = opt_object(m, filter_key)?.unwrap_or_default();
    let within_options = |e: QueryError| e.within(filter_key);

    if kind.has_breakdown()
        && let Some(bf) = opt_object(m, "breakdownFilter")?
    {
        q.breakdown = parse_breakdown(&bf).map_err(|e| e.within("breakdownFilter"))?;
    }
    if kind.has_compare() {
        q.compare = match opt_object(m, "compareFilter")? {
            Some(cf) => parse_compare(&cf).map_err(|e| e.within("compareFilter"))?,
            // Older nodes kept `compare` inside trendsFilter / stickinessFilter.
            None => parse_compare(&options).map_err(within_options)?,
        };
    }
    q.aggregation_group_type_index = opt_group_index(m, "aggregation_group_type_index")?;
    q.aggregate_by_hogql = opt_str(m, "funnelAggregateByHogQL")?;

    match kind {
        InsightKind::Trends => {
            q.trends = parse_trends(&options, &NODE_TRENDS, Form::Node).map_err(within_options)?
        }
        InsightKind::Funnels => {
            q.funnel = parse_funnel(&options, &NODE_FUNNEL, node_exclusion_entity)
                .map_err(within_options)?;
            // PostHog keeps it in funnelsFilter; the top-level spelling above is accepted too.
            if let Some(h) = opt_str(&options, "funnelAggregateByHogQL").map_err(within_options)? {
                q.aggregate_by_hogql = Some(h);
            }
        }
        InsightKind::Retention => {
            q.retention = parse_retention(&options, &NODE_RETENTION).map_err(within_options)?
        }
        InsightKind::Paths => {
            q.paths = parse_paths(&options, &NODE_PATHS).map_err(within_options)?;
            q.paths.funnel_paths = opt_object(m, "funnelPathsFilter")?.map(Value::Object);
        }
        InsightKind::Stickiness => {
            q.stickiness = parse_stickiness(&options, &NODE_STICKINESS).map_err(within_options)?
        }
        InsightKind::Lifecycle => {
            q.lifecycle = parse_lifecycle(&options, "toggledLifecycles").map_err(within_options)?
        }
    }
    if kind == InsightKind::Funnels {
        q.validate_funnel_in(Form::Node)?;
    }
    if kind == InsightKind::Lifecycle && q.series.len() > 1 {
        return Err(QueryError::invalid(
            "series".to_string(),
            "A lifecycle query takes exactly one series.",
        ));
    }
    check_sizes(&q, Form::Node)?;
    Ok(q)
}

/// Resource guards common to every kind (issue 17): series, breakdown dimensions, breakdown
/// limit and cohorts per breakdown, each a 400 on the field that is too long.
fn check_sizes(q: &InsightQuery, form: Form) -> Result<()> {
    let too_many = |attr: &str, what: &str, max: usize| {
        Err(QueryError::invalid(
            attr.to_string(),
            format!("Ensure this field has no more than {max} {what}."),
        ))
    };
    if q.series.len() > MAX_SERIES {
        return too_many(form.pick("events", "series"), "series", MAX_SERIES);
    }
    let Some(b) = &q.breakdown else {
        return Ok(());
    };
    let attr = |legacy: &'static str, node: &'static str| form.pick(legacy, node);
    if b.values.len() > MAX_BREAKDOWNS {
        return too_many(
            attr("breakdowns", "breakdownFilter__breakdowns"),
            "breakdowns",
            MAX_BREAKDOWNS,
        );
    }
    if b.limit.is_some_and(|l| l > MAX_BREAKDOWN_LIMIT) {
        return Err(QueryError::invalid(
            attr("breakdown_limit", "breakdownFilter__breakdown_limit").to_string(),
            format!("Ensure this value is less than or equal to {MAX_BREAKDOWN_LIMIT}."),
        ));
    }
    let cohorts = b.values.iter().map(|v| match &v.property {
        BreakdownProperty::Cohorts(c) => c.len(),
        _ => 0,
    });
    if cohorts.max().unwrap_or(0) > MAX_BREAKDOWN_LIMIT as usize {
        return too_many(
            attr("breakdown", "breakdownFilter__breakdown"),
            "cohorts",
            MAX_BREAKDOWN_LIMIT as usize,
        );
    }
    Ok(())
}

/// One series node: `{kind: EventsNode, event, …}` or `{kind: ActionsNode, id, …}`. Without a
/// `kind`, an `id` and no `event` mean an action, anything else an event.
fn node_entity(v: &Value, kind: InsightKind) -> Result<Entity> {
    let m = as_object(v, None)?;
    const KINDS: &[&str] = &["EventsNode", "ActionsNode"];
    let is_action = match get(&m, "kind") {
        Some(k) => parse_choice(k, "kind", KINDS, exact_name_parser(KINDS))? == "ActionsNode",
        None => get(&m, "id").is_some() && get(&m, "event").is_none(),
    };
    let entity_kind = if is_action {
        EntityKind::Action {
            id: required_int(&m, "id")?,
        }
    } else {
        EntityKind::Event {
            name: opt_str(&m, "event")?,
        }
    };
    let entity = entity_common(&m, entity_kind, &["optionalInFunnel"])?;
    check_math_arguments(&entity, kind)?;
    Ok(entity)
}

/// A node exclusion's entity: `FunnelExclusionEventsNode` / `FunnelExclusionActionsNode` (the
/// plain `EventsNode` / `ActionsNode` spellings are accepted too).
fn node_exclusion_entity(m: &Map<String, Value>) -> Result<Entity> {
    const KINDS: &[&str] = &[
        "FunnelExclusionEventsNode",
        "FunnelExclusionActionsNode",
        "EventsNode",
        "ActionsNode",
    ];
    let is_action = match get(m, "kind") {
        Some(k) => parse_choice(k, "kind", KINDS, exact_name_parser(KINDS))?.contains("Actions"),
        None => get(m, "id").is_some() && get(m, "event").is_none(),
    };
    let kind = if is_action {
        EntityKind::Action {
            id: required_int(m, "id")?,
        }
    } else {
        EntityKind::Event {
            name: opt_str(m, "event")?,
        }
    };
    entity_common(m, kind, &[])
}

// ---------------------------------------------------------------------------------------------
// Parts shared by both forms
// ---------------------------------------------------------------------------------------------

/// Which form a query arrived in: decides the spelling of attrs raised after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Legacy,
    Node,
}

impl Form {
    fn pick(self, legacy: &'static str, node: &'static str) -> &'static str {
        match self {
            Form::Legacy => legacy,
            Form::Node => node,
        }
    }
}

/// The fields every entity shape shares (names, math, filters).
fn entity_common(
    m: &Map<String, Value>,
    kind: EntityKind,
    optional_keys: &[&str],
) -> Result<Entity> {
    let mut optional_in_funnel = false;
    for key in optional_keys {
        if let Some(b) = opt_bool(m, key)? {
            optional_in_funnel = b;
            break;
        }
    }
    Ok(Entity {
        kind,
        name: opt_str(m, "name")?,
        custom_name: opt_str(m, "custom_name")?,
        math: opt_choice(m, "math", MATH_NAMES, name_parser(MATH_NAMES))?.map(str::to_string),
        math_property: opt_str(m, "math_property")?,
        math_group_type_index: opt_group_index(m, "math_group_type_index")?,
        math_hogql: opt_str(m, "math_hogql")?,
        properties: opt_properties(m, "properties")?,
        optional_in_funnel,
    })
}

/// Maths that need an argument must have it where math is computed (trends, stickiness); funnels
/// ignore most maths (docs/funnels.md#input) and lifecycle/retention none apply, so they are not
/// checked there.
fn check_math_arguments(e: &Entity, kind: InsightKind) -> Result<()> {
    if !matches!(kind, InsightKind::Trends | InsightKind::Stickiness) {
        return Ok(());
    }
    let Some(math) = e.math.as_deref() else {
        return Ok(());
    };
    let missing = |attr: &str| {
        QueryError::invalid(
            attr.to_string(),
            format!("This field is required for math \"{math}\"."),
        )
    };
    if PROPERTY_MATHS.contains(&math) && e.math_property.is_none() {
        return Err(missing("math_property"));
    }
    if math == "unique_group" && e.math_group_type_index.is_none() {
        return Err(missing("math_group_type_index"));
    }
    if math == "hogql" && e.math_hogql.is_none() {
        return Err(missing("math_hogql"));
    }
    Ok(())
}

/// `intervalCount` > 1 is not supported for weeks (docs/dates.md#intervals-and-buckets).
fn check_interval_count(q: &InsightQuery, attr: &str) -> Result<()> {
    if q.interval.as_deref() == Some("week") && q.interval_count > 1 {
        return Err(QueryError::invalid(
            attr.to_string(),
            "An interval count greater than 1 is not supported for week intervals.",
        ));
    }
    Ok(())
}

/// The breakdown keys, spelled the same in a legacy filter and a node's `breakdownFilter`.
/// `breakdowns` (multi) wins over `breakdown`; a missing or empty breakdown gives `None`.
fn parse_breakdown(m: &Map<String, Value>) -> Result<Option<Breakdown>> {
    let limit = opt_u32(m, "breakdown_limit", 1)?;
    let hide_other = opt_bool(m, "breakdown_hide_other_aggregation")?.unwrap_or(false);
    let mut values = Vec::new();
    if let Some(items) = opt_list(m, "breakdowns")? {
        for (i, item) in items.iter().enumerate() {
            let spec = multi_breakdown_spec(item)
                .map_err(|e| e.within(&i.to_string()).within("breakdowns"))?;
            values.extend(spec);
        }
    }
    if values.is_empty() {
        values = single_breakdown(m)?;
    }
    if values.is_empty() {
        return Ok(None);
    }
    Ok(Some(Breakdown {
        values,
        limit,
        hide_other,
    }))
}

/// `breakdown` + `breakdown_type` + companions. A list of property names (PostHog's older
/// multi-property form) gives one spec per name; a cohort breakdown gives one spec of cohorts.
fn single_breakdown(m: &Map<String, Value>) -> Result<Vec<BreakdownSpec>> {
    let kind = breakdown_type(m, "breakdown_type")?;
    let group_type_index = opt_group_index(m, "breakdown_group_type_index")?;
    let histogram_bin_count = opt_u32(m, "breakdown_histogram_bin_count", 1)?;
    let normalize_url = opt_bool(m, "breakdown_normalize_url")?.unwrap_or(false);
    let Some(v) = get(m, "breakdown") else {
        return Ok(Vec::new());
    };
    let spec = |property| BreakdownSpec {
        property,
        kind: kind.to_string(),
        group_type_index,
        histogram_bin_count,
        normalize_url,
    };
    let specs: Vec<BreakdownSpec> = if kind == "cohort" {
        let cohorts = cohort_refs(v, "breakdown")?;
        if cohorts.is_empty() {
            Vec::new()
        } else {
            vec![spec(BreakdownProperty::Cohorts(cohorts))]
        }
    } else {
        breakdown_keys(v, "breakdown")?
            .into_iter()
            .map(|key| spec(BreakdownProperty::Property(key)))
            .collect()
    };
    if kind == "group" && group_type_index.is_none() && !specs.is_empty() {
        return Err(group_index_required("breakdown_group_type_index"));
    }
    Ok(specs)
}

/// One entry of multi-breakdown `breakdowns: [{property, type, group_type_index, …}]`.
fn multi_breakdown_spec(v: &Value) -> Result<Option<BreakdownSpec>> {
    let m = as_object(v, None)?;
    let kind = breakdown_type(&m, "type")?;
    let group_type_index = opt_group_index(&m, "group_type_index")?;
    let Some(property) = get(&m, "property") else {
        return Err(QueryError::invalid(
            "property".to_string(),
            "This field is required.",
        ));
    };
    let property = if kind == "cohort" {
        BreakdownProperty::Cohorts(cohort_refs(property, "property")?)
    } else {
        match breakdown_keys(property, "property")?.as_slice() {
            [key] => BreakdownProperty::Property(key.clone()),
            [] => return Ok(None),
            _ => {
                return Err(QueryError::bad_json(
                    "property".to_string(),
                    "Not a valid string.",
                ));
            }
        }
    };
    if kind == "group" && group_type_index.is_none() {
        return Err(group_index_required("group_type_index"));
    }
    Ok(Some(BreakdownSpec {
        property,
        kind: kind.to_string(),
        group_type_index,
        histogram_bin_count: opt_u32(&m, "histogram_bin_count", 1)?,
        normalize_url: opt_bool(&m, "normalize_url")?.unwrap_or(false),
    }))
}

fn group_index_required(attr: &str) -> QueryError {
    QueryError::invalid(
        attr.to_string(),
        "This field is required for group breakdowns.",
    )
}

/// The breakdown type, `event` by default; PostHog's old typo `events` is accepted.
fn breakdown_type(m: &Map<String, Value>, key: &str) -> Result<&'static str> {
    match get(m, key) {
        Some(Value::String(s)) if s.trim() == "events" => Ok("event"),
        Some(v) => parse_choice(
            v,
            key,
            BREAKDOWN_TYPE_NAMES,
            name_parser(BREAKDOWN_TYPE_NAMES),
        ),
        None => Ok("event"),
    }
}

/// Property breakdown keys: a string (or a JSON list in a string, from GET), a number, or a list
/// of those. Numbers are keys too (a property may be named `5`); nulls and `""` are dropped.
fn breakdown_keys(v: &Value, attr: &str) -> Result<Vec<String>> {
    let items = match v {
        Value::String(s) => match decode_embedded(s, '[') {
            Some(Value::Array(items)) => items,
            _ => {
                return Ok(if s.is_empty() {
                    Vec::new()
                } else {
                    vec![s.clone()]
                });
            }
        },
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let mut keys = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => keys.push(s.clone()),
            Value::Number(n) => keys.push(n.to_string()),
            Value::Null => {}
            _ => {
                let attr = if matches!(v, Value::Array(_)) {
                    format!("{attr}__{i}")
                } else {
                    attr.to_string()
                };
                return Err(QueryError::bad_json(attr, "Not a valid string."));
            }
        }
    }
    Ok(keys)
}

/// Cohort breakdown values: ids and/or `"all"`, as one value, a list, or a JSON list in a string.
fn cohort_refs(v: &Value, attr: &str) -> Result<Vec<CohortRef>> {
    let items = match v {
        Value::Array(items) => items.clone(),
        Value::String(s) => match decode_embedded(s, '[') {
            Some(Value::Array(items)) => items,
            _ => vec![v.clone()],
        },
        other => vec![other.clone()],
    };
    let bad = || {
        QueryError::invalid(
            attr.to_string(),
            "Cohort breakdowns take cohort ids or \"all\".",
        )
    };
    items
        .iter()
        .filter(|item| !item.is_null())
        .map(|item| match item {
            Value::String(s) if s.trim().eq_ignore_ascii_case("all") => Ok(CohortRef::All),
            _ => value_int(item, attr).map(CohortRef::Id).map_err(|_| bad()),
        })
        .collect()
}

/// `compare` / `compare_to`, spelled the same in a legacy filter and a node's `compareFilter`.
fn parse_compare(m: &Map<String, Value>) -> Result<Option<Compare>> {
    let compare = opt_bool(m, "compare")?.unwrap_or(false);
    let compare_to = opt_str(m, "compare_to")?;
    Ok(compare.then_some(Compare { compare_to }))
}

/// Funnel option names in one form.
struct FunnelKeys {
    order: &'static str,
    viz: &'static str,
    window_interval: &'static str,
    /// Synonyms, first wins: PostHog sends `_unit`, its published docs say `_type`.
    window_unit: &'static [&'static str],
    /// Deprecated window in days (legacy only).
    window_days: Option<&'static str>,
    exclusions: &'static str,
    from_step: &'static str,
    to_step: &'static str,
    attribution: &'static str,
    attribution_value: &'static str,
    bin_count: &'static str,
    step_reference: &'static str,
}

const LEGACY_FUNNEL: FunnelKeys = FunnelKeys {
    order: "funnel_order_type",
    viz: "funnel_viz_type",
    window_interval: "funnel_window_interval",
    window_unit: &["funnel_window_interval_unit", "funnel_window_interval_type"],
    window_days: Some("funnel_window_days"),
    exclusions: "exclusions",
    from_step: "funnel_from_step",
    to_step: "funnel_to_step",
    attribution: "breakdown_attribution_type",
    attribution_value: "breakdown_attribution_value",
    bin_count: "bin_count",
    step_reference: "funnel_step_reference",
};

const NODE_FUNNEL: FunnelKeys = FunnelKeys {
    order: "funnelOrderType",
    viz: "funnelVizType",
    window_interval: "funnelWindowInterval",
    window_unit: &["funnelWindowIntervalUnit"],
    window_days: None,
    exclusions: "exclusions",
    from_step: "funnelFromStep",
    to_step: "funnelToStep",
    attribution: "breakdownAttributionType",
    attribution_value: "breakdownAttributionValue",
    bin_count: "binCount",
    step_reference: "funnelStepReference",
};

fn parse_funnel(
    m: &Map<String, Value>,
    keys: &FunnelKeys,
    exclusion_entity: fn(&Map<String, Value>) -> Result<Entity>,
) -> Result<FunnelOptions> {
    let mut f = FunnelOptions::default();
    if let Some(order) = opt_choice(m, keys.order, FunnelOrder::NAMES, FunnelOrder::parse)? {
        f.order = order;
    }
    if let Some(viz) = opt_choice(m, keys.viz, FunnelViz::NAMES, FunnelViz::parse)? {
        f.viz = viz;
    }
    let interval = opt_int(m, keys.window_interval, 1, i64::MAX)?;
    let days = match keys.window_days {
        Some(key) => opt_int(m, key, 1, i64::MAX)?,
        None => None,
    };
    let mut unit = None;
    for key in keys.window_unit {
        if let Some(v) = get(m, key) {
            unit = Some(parse_choice(v, key, WINDOW_UNIT_NAMES, window_unit)?);
            break;
        }
    }
    // The interval wins over the deprecated days; days always mean days.
    (f.window_interval, f.window_unit) = match (interval, days) {
        (Some(n), _) => (n, unit.unwrap_or("day").to_string()),
        (None, Some(d)) => (d, "day".to_string()),
        (None, None) => (
            DEFAULT_FUNNEL_WINDOW_INTERVAL,
            unit.unwrap_or("day").to_string(),
        ),
    };
    if let Some(items) = opt_list(m, keys.exclusions)? {
        for (i, item) in items.iter().enumerate() {
            let exclusion = parse_exclusion(item, keys, exclusion_entity)
                .map_err(|e| e.within(&i.to_string()).within(keys.exclusions))?;
            f.exclusions.push(exclusion);
        }
    }
    if let Some(a) = opt_choice(
        m,
        keys.attribution,
        AttributionType::NAMES,
        AttributionType::parse,
    )? {
        f.attribution = a;
    }
    f.attribution_value = opt_u32(m, keys.attribution_value, 0)?;
    f.from_step = opt_step(m, keys.from_step)?;
    f.to_step = opt_step(m, keys.to_step)?;
    f.bin_count = match get(m, keys.bin_count) {
        // PostHog's time-to-convert also takes "auto" (choose the bin count from the data).
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("auto") => None,
        _ => opt_u32(m, keys.bin_count, 1)?,
    };
    if let Some(r) = opt_choice(
        m,
        keys.step_reference,
        StepReference::NAMES,
        StepReference::parse,
    )? {
        f.step_reference = r;
    }
    Ok(f)
}

fn parse_exclusion(
    v: &Value,
    keys: &FunnelKeys,
    exclusion_entity: fn(&Map<String, Value>) -> Result<Entity>,
) -> Result<Exclusion> {
    let m = as_object(v, None)?;
    let entity = exclusion_entity(&m)?;
    match (opt_step(&m, keys.from_step)?, opt_step(&m, keys.to_step)?) {
        (Some(from_step), Some(to_step)) => Ok(Exclusion {
            entity,
            from_step,
            to_step,
        }),
        // PostHog's message (legacy funnel code).
        _ => Err(QueryError::invalid(
            None,
            "Exclusion event needs to define funnel steps",
        )),
    }
}

/// A 0-based step index.
fn opt_step(m: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    Ok(opt_int(m, key, 0, i64::from(u32::MAX))?.and_then(|n| usize::try_from(n).ok()))
}

/// Window units: any case, singular or plural (`Days`, `HOUR`, `weeks`).
fn window_unit(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    let singular = s.strip_suffix('s').unwrap_or(&s);
    WINDOW_UNIT_NAMES.iter().copied().find(|u| *u == singular)
}

/// Trends option names in one form.
struct TrendsKeys {
    smoothing: &'static str,
    /// `formulaNodes` (node) or our legacy round-trip spelling `formula_nodes`.
    formula_nodes: &'static str,
}

const LEGACY_TRENDS: TrendsKeys = TrendsKeys {
    smoothing: "smoothing_intervals",
    formula_nodes: "formula_nodes",
};
const NODE_TRENDS: TrendsKeys = TrendsKeys {
    smoothing: "smoothingIntervals",
    formula_nodes: "formulaNodes",
};

fn parse_trends(m: &Map<String, Value>, keys: &TrendsKeys, form: Form) -> Result<TrendsOptions> {
    let mut t = TrendsOptions::default();
    match form {
        // PostHog's legacy conversion drops display values it does not know (old saved insights
        // carry e.g. "ActionsLineGraphLinear") instead of failing.
        Form::Legacy => {
            if let Some(d) = get(m, "display")
                .and_then(Value::as_str)
                .and_then(exact_name_parser(DISPLAY_NAMES))
            {
                t.display = d.to_string();
            }
        }
        Form::Node => {
            if let Some(d) = opt_choice(
                m,
                "display",
                DISPLAY_NAMES,
                exact_name_parser(DISPLAY_NAMES),
            )? {
                t.display = d.to_string();
            }
        }
    }
    // Most specific spelling first: formula nodes, then the list of strings, then one formula.
    if let Some(items) = opt_list(m, keys.formula_nodes)? {
        for (i, item) in items.iter().enumerate() {
            let node = as_object(item, None)
                .and_then(|n| Ok((opt_str(&n, "formula")?, opt_str(&n, "custom_name")?)))
                .map_err(|e| e.within(&i.to_string()).within(keys.formula_nodes))?;
            if let (Some(formula), custom_name) = node {
                t.formulas.push(Formula {
                    formula,
                    custom_name,
                });
            }
        }
    }
    if t.formulas.is_empty() {
        for formula in opt_string_list(m, "formulas")?.unwrap_or_default() {
            t.formulas.push(Formula {
                formula,
                custom_name: None,
            });
        }
    }
    if t.formulas.is_empty()
        && let Some(formula) = opt_str(m, "formula")?
    {
        t.formulas.push(Formula {
            formula,
            custom_name: None,
        });
    }
    t.formulas.retain(|f| !f.formula.trim().is_empty());
    t.smoothing_intervals = opt_u32(m, keys.smoothing, 1)?.unwrap_or(1);
    Ok(t)
}

/// Retention option names in one form.
struct RetentionKeys {
    target: &'static str,
    returning: &'static str,
    retention_type: &'static str,
    total_intervals: &'static str,
    minimum_occurrences: &'static str,
    reference: &'static str,
}

const LEGACY_RETENTION: RetentionKeys = RetentionKeys {
    target: "target_entity",
    returning: "returning_entity",
    retention_type: "retention_type",
    total_intervals: "total_intervals",
    minimum_occurrences: "minimum_occurrences",
    reference: "retention_reference",
};

const NODE_RETENTION: RetentionKeys = RetentionKeys {
    target: "targetEntity",
    returning: "returningEntity",
    retention_type: "retentionType",
    total_intervals: "totalIntervals",
    minimum_occurrences: "minimumOccurrences",
    reference: "retentionReference",
};

fn parse_retention(m: &Map<String, Value>, keys: &RetentionKeys) -> Result<RetentionOptions> {
    let mut r = RetentionOptions::default();
    if let Some(target) = opt_object(m, keys.target)? {
        r.target_entity = retention_entity(&target).map_err(|e| e.within(keys.target))?;
    }
    if let Some(returning) = opt_object(m, keys.returning)? {
        r.returning_entity = retention_entity(&returning).map_err(|e| e.within(keys.returning))?;
    }
    if let Some(t) = opt_choice(
        m,
        keys.retention_type,
        RetentionType::NAMES,
        RetentionType::parse,
    )? {
        r.retention_type = t;
    }
    if let Some(p) = opt_choice(m, "period", RetentionPeriod::NAMES, RetentionPeriod::parse)? {
        r.period = p;
    }
    r.total_intervals = opt_u32(m, keys.total_intervals, 1)?.unwrap_or(DEFAULT_RETENTION_INTERVALS);
    r.cumulative = opt_bool(m, "cumulative")?.unwrap_or(false);
    r.minimum_occurrences = opt_u32(m, keys.minimum_occurrences, 1)?.unwrap_or(1);
    if let Some(reference) = opt_choice(
        m,
        keys.reference,
        RetentionReference::NAMES,
        RetentionReference::parse,
    )? {
        r.reference = reference;
    }
    Ok(r)
}

/// A retention entity `{id, type: events|actions, name, …}` (nodes may say `kind: ActionsNode`
/// instead of `type`). For events `id` is the event name, `null` meaning all events.
fn retention_entity(m: &Map<String, Value>) -> Result<Entity> {
    let is_action = match get(m, "type") {
        Some(t) => {
            parse_choice(
                t,
                "type",
                &["events", "actions"],
                name_parser(&["events", "actions"]),
            )? == "actions"
        }
        None => get(m, "kind").and_then(Value::as_str) == Some("ActionsNode"),
    };
    let kind = if is_action {
        EntityKind::Action {
            id: required_int(m, "id")?,
        }
    } else {
        EntityKind::Event {
            name: opt_str(m, "id")?,
        }
    };
    entity_common(m, kind, &[])
}

/// Paths option names in one form.
struct PathsKeys {
    include_event_types: &'static str,
    start_point: &'static str,
    end_point: &'static str,
    step_limit: &'static str,
    path_groupings: &'static str,
    exclude_events: &'static str,
    edge_limit: &'static str,
    min_edge_weight: &'static str,
    max_edge_weight: &'static str,
    local_path_cleaning_filters: &'static str,
    path_replacements: &'static str,
    hogql_expression: &'static str,
}

const LEGACY_PATHS: PathsKeys = PathsKeys {
    include_event_types: "include_event_types",
    start_point: "start_point",
    end_point: "end_point",
    step_limit: "step_limit",
    path_groupings: "path_groupings",
    exclude_events: "exclude_events",
    edge_limit: "edge_limit",
    min_edge_weight: "min_edge_weight",
    max_edge_weight: "max_edge_weight",
    local_path_cleaning_filters: "local_path_cleaning_filters",
    path_replacements: "path_replacements",
    hogql_expression: "paths_hogql_expression",
};

const NODE_PATHS: PathsKeys = PathsKeys {
    include_event_types: "includeEventTypes",
    start_point: "startPoint",
    end_point: "endPoint",
    step_limit: "stepLimit",
    path_groupings: "pathGroupings",
    exclude_events: "excludeEvents",
    edge_limit: "edgeLimit",
    min_edge_weight: "minEdgeWeight",
    max_edge_weight: "maxEdgeWeight",
    local_path_cleaning_filters: "localPathCleaningFilters",
    path_replacements: "pathReplacements",
    hogql_expression: "pathsHogQLExpression",
};

fn parse_paths(m: &Map<String, Value>, keys: &PathsKeys) -> Result<PathsOptions> {
    let mut p = PathsOptions::default();
    let types = opt_string_list(m, keys.include_event_types)?.unwrap_or_default();
    for (i, t) in types.iter().enumerate() {
        if !PATH_TYPE_NAMES.contains(&t.as_str()) {
            return Err(choice_error(
                &format!("{}__{i}", keys.include_event_types),
                t,
                PATH_TYPE_NAMES,
            ));
        }
    }
    p.include_event_types = types;
    p.start_point = opt_str(m, keys.start_point)?;
    p.end_point = opt_str(m, keys.end_point)?;
    p.step_limit = opt_u32(m, keys.step_limit, 1)?.unwrap_or(p.step_limit);
    p.path_groupings = opt_string_list(m, keys.path_groupings)?.unwrap_or_default();
    p.exclude_events = opt_string_list(m, keys.exclude_events)?.unwrap_or_default();
    p.edge_limit = opt_u32(m, keys.edge_limit, 1)?.unwrap_or(p.edge_limit);
    p.min_edge_weight = opt_u32(m, keys.min_edge_weight, 0)?;
    p.max_edge_weight = opt_u32(m, keys.max_edge_weight, 0)?;
    if let Some(items) = opt_list(m, keys.local_path_cleaning_filters)? {
        for (i, item) in items.iter().enumerate() {
            let rule = as_object(item, None)
                .and_then(|r| Ok((opt_str(&r, "regex")?, opt_str(&r, "alias")?)))
                .map_err(|e| {
                    e.within(&i.to_string())
                        .within(keys.local_path_cleaning_filters)
                })?;
            // The UI saves half-filled rules; a rule without a regex does nothing.
            if let (Some(regex), alias) = rule {
                p.local_path_cleaning_filters.push(PathCleaningFilter {
                    regex,
                    alias: alias.unwrap_or_default(),
                });
            }
        }
    }
    p.path_replacements = opt_bool(m, keys.path_replacements)?.unwrap_or(false);
    p.hogql_expression = opt_str(m, keys.hogql_expression)?;
    Ok(p)
}

/// Stickiness option names in one form.
struct StickinessKeys {
    computed_as: &'static str,
    criteria: &'static str,
}

const LEGACY_STICKINESS: StickinessKeys = StickinessKeys {
    computed_as: "computed_as",
    criteria: "stickiness_criteria",
};
const NODE_STICKINESS: StickinessKeys = StickinessKeys {
    computed_as: "computedAs",
    criteria: "stickinessCriteria",
};

fn parse_stickiness(m: &Map<String, Value>, keys: &StickinessKeys) -> Result<StickinessOptions> {
    let mut s = StickinessOptions::default();
    if let Some(c) = opt_choice(
        m,
        keys.computed_as,
        StickinessComputation::NAMES,
        StickinessComputation::parse,
    )? {
        s.computed_as = c;
    }
    if let Some(c) = opt_object(m, keys.criteria)? {
        s.criteria = Some(stickiness_criteria(&c).map_err(|e| e.within(keys.criteria))?);
    }
    Ok(s)
}

/// `{operator: gte|lte|exact, value: n}`; PostHog's UI default is "at least 1 event".
fn stickiness_criteria(c: &Map<String, Value>) -> Result<StickinessCriteria> {
    let operator = opt_choice(
        c,
        "operator",
        STICKINESS_OPERATOR_NAMES,
        name_parser(STICKINESS_OPERATOR_NAMES),
    )?;
    let value = opt_int(c, "value", 0, i64::MAX)?;
    Ok(StickinessCriteria {
        operator: operator.unwrap_or("gte").to_string(),
        value: value.unwrap_or(1),
    })
}

fn parse_lifecycle(m: &Map<String, Value>, key: &str) -> Result<LifecycleOptions> {
    let toggled = opt_string_list(m, key)?;
    if let Some(list) = &toggled {
        for (i, status) in list.iter().enumerate() {
            if !LIFECYCLE_NAMES.contains(&status.as_str()) {
                return Err(choice_error(
                    &format!("{key}__{i}"),
                    status,
                    LIFECYCLE_NAMES,
                ));
            }
        }
    }
    Ok(LifecycleOptions {
        toggled_lifecycles: toggled,
    })
}

// ---------------------------------------------------------------------------------------------
// Funnel validation (docs/funnels.md#validation)
// ---------------------------------------------------------------------------------------------

impl InsightQuery {
    /// PostHog's funnel checks, in its order: step count, `funnelFromStep`/`funnelToStep` bounds,
    /// exclusion ranges and overlap with steps, optional-step rules, then the unordered-funnel
    /// rules. Attrs use the legacy names (`exclusions`, `funnel_from_step`, …); parsing a node
    /// runs the same checks with node names (`funnelsFilter__exclusions`, …).
    ///
    /// PostHog (newest) requires at least 2 steps ("Funnels require at least two steps.");
    /// more than [`MAX_FUNNEL_STEPS`] is our own guard.
    pub fn validate_funnel(&self) -> Result<()> {
        self.validate_funnel_in(Form::Legacy)
    }

    fn validate_funnel_in(&self, form: Form) -> Result<()> {
        let steps_attr = form.pick("events", "series");
        let invalid = |attr: &str, detail: String| QueryError::invalid(attr.to_string(), detail);
        let n = self.series.len();
        if n < 2 {
            return Err(invalid(
                steps_attr,
                "Funnels require at least two steps.".into(),
            ));
        }
        if n > MAX_FUNNEL_STEPS {
            return Err(invalid(
                steps_attr,
                format!("Funnels can have at most {MAX_FUNNEL_STEPS} steps."),
            ));
        }
        let last = n - 1;
        let f = &self.funnel;

        let from_attr = form.pick("funnel_from_step", "funnelsFilter__funnelFromStep");
        let to_attr = form.pick("funnel_to_step", "funnelsFilter__funnelToStep");
        if let Some(from) = f.from_step
            && from >= last
        {
            let detail = format!(
                "funnelFromStep is out of bounds. It must be between 0 and {}.",
                last - 1
            );
            return Err(invalid(from_attr, detail));
        }
        if let Some(to) = f.to_step {
            if !(1..=last).contains(&to) {
                return Err(invalid(
                    to_attr,
                    format!("funnelToStep is out of bounds. It must be between 1 and {last}."),
                ));
            }
            if f.from_step.is_some_and(|from| from >= to) {
                let detail = "Funnel step range is invalid. funnelToStep should be greater than funnelFromStep.";
                return Err(invalid(to_attr, detail.into()));
            }
        }

        let exclusions_attr = form.pick("exclusions", "funnelsFilter__exclusions");
        for exclusion in &f.exclusions {
            let (from, to) = (exclusion.from_step, exclusion.to_step);
            if from >= to {
                let detail =
                    "Exclusion event range is invalid. End of range should be greater than start.";
                return Err(invalid(exclusions_attr, detail.into()));
            }
            if from >= last {
                let detail = "Exclusion event range is invalid. Start of range is greater than number of steps.";
                return Err(invalid(exclusions_attr, detail.into()));
            }
            if to > last {
                let detail = "Exclusion event range is invalid. End of range is greater than number of steps.";
                return Err(invalid(exclusions_attr, detail.into()));
            }
            let steps = self.series.get(from..=to).unwrap_or_default();
            if steps.iter().any(|step| {
                is_equal(step, &exclusion.entity) || is_superset(step, &exclusion.entity)
            }) {
                let detail = "Exclusion steps cannot contain an event that's part of funnel steps.";
                return Err(invalid(exclusions_attr, detail.into()));
            }
        }

        if self.series.iter().any(|s| s.optional_in_funnel) {
            if f.viz != FunnelViz::Steps || f.order == FunnelOrder::Unordered {
                let detail = "Optional funnel steps are only supported in funnels with step order Sequential or Strict and the graph type \"Conversion Steps\".";
                return Err(invalid(steps_attr, detail.into()));
            }
            if self.series.first().is_some_and(|s| s.optional_in_funnel) {
                return Err(invalid(
                    steps_attr,
                    "The first step of a funnel cannot be optional.".into(),
                ));
            }
            for pair in self.series.windows(2) {
                if let [previous, current] = pair {
                    let same = is_equal(previous, current) || is_superset(current, previous);
                    if same && previous.optional_in_funnel && !current.optional_in_funnel {
                        let detail =
                            "An optional step cannot be the same as the following required step.";
                        return Err(invalid(steps_attr, detail.into()));
                    }
                }
            }
        }

        let attribution_attr = form.pick(
            "breakdown_attribution_value",
            "funnelsFilter__breakdownAttributionValue",
        );
        if f.order == FunnelOrder::Unordered {
            if f.exclusions
                .iter()
                .any(|e| e.from_step != 0 || e.to_step != last)
            {
                return Err(invalid(
                    exclusions_attr,
                    "Partial Exclusions not allowed in unordered funnels".into(),
                ));
            }
            // As PostHog: a missing value counts as "not step 0" too.
            if f.attribution == AttributionType::Step && f.attribution_value != Some(0) {
                let detail = "Only the first step can be used for breakdown attribution in unordered funnels";
                return Err(invalid(attribution_attr, detail.into()));
            }
        }
        // Our own guard: attributing to a step the funnel does not have.
        if f.attribution == AttributionType::Step
            && let Some(step) = f.attribution_value
            && usize::try_from(step).unwrap_or(usize::MAX) > last
        {
            let detail = format!(
                "breakdownAttributionValue {step} is out of bounds. It must be between 0 and {last}."
            );
            return Err(invalid(attribution_attr, detail));
        }
        Ok(())
    }
}

/// PostHog's `is_equal`: same event/action and the same property filters (as a multiset of
/// their semantic representations; math is not compared).
fn is_equal(a: &Entity, b: &Entity) -> bool {
    a.kind == b.kind && property_reprs(&a.properties) == property_reprs(&b.properties)
}

/// PostHog's `is_superset(a, b)`: same event/action and `a`'s filters are a sub-multiset of
/// `b`'s, i.e. `a` matches everything `b` matches.
fn is_superset(a: &Entity, b: &Entity) -> bool {
    if a.kind != b.kind {
        return false;
    }
    let mut remaining = property_reprs(&b.properties);
    for filter in property_reprs(&a.properties) {
        match remaining.iter().position(|r| *r == filter) {
            Some(i) => {
                remaining.swap_remove(i);
            }
            None => return false,
        }
    }
    true
}

/// Sorted semantic representations of the filters in an entity's `properties`. AND groups are
/// flattened into their members; any other group counts as one opaque filter; empty filters
/// (`{}`) are skipped, as PostHog skips its EmptyPropertyFilter.
fn property_reprs(v: &Value) -> Vec<String> {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            Value::Object(m) => match (m.get("type").and_then(Value::as_str), m.get("values")) {
                (Some(t), Some(Value::Array(values))) if t.eq_ignore_ascii_case("AND") => {
                    values.iter().for_each(|item| collect(item, out))
                }
                (Some(t), Some(Value::Array(_))) if t.eq_ignore_ascii_case("OR") => {
                    out.push(v.to_string())
                }
                _ => {
                    if let Some(r) = filter_repr(m) {
                        out.push(r)
                    }
                }
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    collect(v, &mut out);
    out.sort();
    out
}

/// `"type: key operator value"`, with PostHog's defaults (type event, operator exact); cohort and
/// HogQL filters have no operator.
fn filter_repr(m: &Map<String, Value>) -> Option<String> {
    let key = m.get("key").filter(|k| !k.is_null())?;
    let kind = m.get("type").and_then(Value::as_str).unwrap_or("event");
    let value = m
        .get("value")
        .map_or_else(|| "null".to_string(), Value::to_string);
    if kind == "cohort" || kind == "hogql" {
        return Some(format!("{kind}: {key} {value}"));
    }
    let operator = m.get("operator").and_then(Value::as_str).unwrap_or("exact");
    Some(format!("{kind}: {key} {operator} {value}"))
}

// ---------------------------------------------------------------------------------------------
// Rendering back as a legacy filter
// ---------------------------------------------------------------------------------------------

impl InsightQuery {
    /// The query as a legacy filter dict, as PostHog puts in trends results' `filter`. Parsing the
    /// result again gives the same model (tested), so it is also a faithful serialisation.
    /// Unset optional values are left out, like PostHog's `{k: v … if v is not None}`.
    pub fn to_legacy_filter(&self) -> Value {
        let mut f = Map::new();
        let mut put = |key: &str, v: Value| {
            if !v.is_null() {
                f.insert(key.to_string(), v);
            }
        };
        put("insight", json!(self.kind.legacy_name()));
        if self.kind.has_series() {
            let (mut events, mut actions) = (Vec::new(), Vec::new());
            for (order, e) in self.series.iter().enumerate() {
                match e.kind {
                    EntityKind::Event { .. } => events.push(e.to_legacy(Some(order))),
                    EntityKind::Action { .. } => actions.push(e.to_legacy(Some(order))),
                }
            }
            put("events", Value::Array(events));
            put("actions", Value::Array(actions));
        }
        put("date_from", json!(self.date_from));
        put("date_to", json!(self.date_to));
        if self.explicit_date {
            put("explicit_date", json!(true));
        }
        put("interval", json!(self.interval));
        if self.interval_count != 1 {
            put("interval_count", json!(self.interval_count));
        }
        put("properties", self.properties.clone());
        put("filter_test_accounts", json!(self.filter_test_accounts));
        if let Some(b) = &self.breakdown {
            render_breakdown(b, &mut put);
        }
        if let Some(c) = &self.compare {
            put("compare", json!(true));
            put("compare_to", json!(c.compare_to));
        }
        put(
            "aggregation_group_type_index",
            json!(self.aggregation_group_type_index),
        );
        put("funnel_aggregate_by_hogql", json!(self.aggregate_by_hogql));
        match self.kind {
            InsightKind::Trends => {
                let t = &self.trends;
                put("display", json!(t.display));
                if let Some(first) = t.formulas.first() {
                    put("formula", json!(first.formula));
                }
                // Legacy filters hold one formula; more, or a named one, need our extension key.
                if t.formulas.len() > 1 || t.formulas.iter().any(|x| x.custom_name.is_some()) {
                    let nodes: Vec<Value> = t
                        .formulas
                        .iter()
                        .map(|x| json!({"formula": x.formula, "custom_name": x.custom_name}))
                        .collect();
                    put("formula_nodes", Value::Array(nodes));
                }
                put("smoothing_intervals", json!(t.smoothing_intervals));
            }
            InsightKind::Funnels => {
                let fo = &self.funnel;
                put("funnel_order_type", json!(fo.order.name()));
                put("funnel_viz_type", json!(fo.viz.name()));
                put("funnel_window_interval", json!(fo.window_interval));
                put("funnel_window_interval_unit", json!(fo.window_unit));
                let exclusions: Vec<Value> = fo
                    .exclusions
                    .iter()
                    .map(|x| {
                        let mut e = x.entity.to_legacy(None);
                        if let Value::Object(m) = &mut e {
                            m.insert("funnel_from_step".into(), json!(x.from_step));
                            m.insert("funnel_to_step".into(), json!(x.to_step));
                        }
                        e
                    })
                    .collect();
                put("exclusions", Value::Array(exclusions));
                put("breakdown_attribution_type", json!(fo.attribution.name()));
                put("breakdown_attribution_value", json!(fo.attribution_value));
                put("funnel_from_step", json!(fo.from_step));
                put("funnel_to_step", json!(fo.to_step));
                put("bin_count", json!(fo.bin_count));
                put("funnel_step_reference", json!(fo.step_reference.name()));
            }
            InsightKind::Retention => {
                let r = &self.retention;
                put("target_entity", r.target_entity.to_legacy(None));
                put("returning_entity", r.returning_entity.to_legacy(None));
                put("retention_type", json!(r.retention_type.name()));
                put("period", json!(r.period.name()));
                put("total_intervals", json!(r.total_intervals));
                put("cumulative", json!(r.cumulative));
                put("minimum_occurrences", json!(r.minimum_occurrences));
                put("retention_reference", json!(r.reference.name()));
            }
            InsightKind::Paths => {
                let p = &self.paths;
                put("include_event_types", json!(p.include_event_types));
                put("start_point", json!(p.start_point));
                put("end_point", json!(p.end_point));
                put("step_limit", json!(p.step_limit));
                put("path_groupings", json!(p.path_groupings));
                put("exclude_events", json!(p.exclude_events));
                put("edge_limit", json!(p.edge_limit));
                put("min_edge_weight", json!(p.min_edge_weight));
                put("max_edge_weight", json!(p.max_edge_weight));
                let rules: Vec<Value> = p
                    .local_path_cleaning_filters
                    .iter()
                    .map(|r| json!({"regex": r.regex, "alias": r.alias}))
                    .collect();
                put("local_path_cleaning_filters", Value::Array(rules));
                put("path_replacements", json!(p.path_replacements));
                put("paths_hogql_expression", json!(p.hogql_expression));
                if let Some(fp) = &p.funnel_paths {
                    put(
                        "funnel_paths",
                        fp.get("funnelPathType").cloned().unwrap_or(Value::Null),
                    );
                    put(
                        "funnel_filter",
                        fp.get("funnelSource").cloned().unwrap_or(Value::Null),
                    );
                }
            }
            InsightKind::Stickiness => {
                let s = &self.stickiness;
                put("shown_as", json!("Stickiness"));
                put("computed_as", json!(s.computed_as.name()));
                if let Some(c) = &s.criteria {
                    put(
                        "stickiness_criteria",
                        json!({"operator": c.operator, "value": c.value}),
                    );
                }
            }
            InsightKind::Lifecycle => {
                put("shown_as", json!("Lifecycle"));
                put(
                    "toggledLifecycles",
                    json!(self.lifecycle.toggled_lifecycles),
                );
            }
        }
        Value::Object(f)
    }
}

fn render_breakdown(b: &Breakdown, put: &mut impl FnMut(&str, Value)) {
    let property = |p: &BreakdownProperty| match p {
        BreakdownProperty::Property(key) => json!(key),
        BreakdownProperty::Cohorts(cohorts) => Value::Array(
            cohorts
                .iter()
                .map(|c| match c {
                    CohortRef::All => json!("all"),
                    CohortRef::Id(id) => json!(id),
                })
                .collect(),
        ),
    };
    match b.values.as_slice() {
        [one] => {
            put("breakdown", property(&one.property));
            put("breakdown_type", json!(one.kind));
            put("breakdown_group_type_index", json!(one.group_type_index));
            put(
                "breakdown_histogram_bin_count",
                json!(one.histogram_bin_count),
            );
            if one.normalize_url {
                put("breakdown_normalize_url", json!(true));
            }
        }
        many => {
            let specs: Vec<Value> = many
                .iter()
                .map(|s| {
                    let mut m = Map::new();
                    m.insert("property".into(), property(&s.property));
                    m.insert("type".into(), json!(s.kind));
                    if let Some(g) = s.group_type_index {
                        m.insert("group_type_index".into(), json!(g));
                    }
                    if let Some(h) = s.histogram_bin_count {
                        m.insert("histogram_bin_count".into(), json!(h));
                    }
                    if s.normalize_url {
                        m.insert("normalize_url".into(), json!(true));
                    }
                    Value::Object(m)
                })
                .collect();
            put("breakdowns", Value::Array(specs));
        }
    }
    put("breakdown_limit", json!(b.limit));
    if b.hide_other {
        put("breakdown_hide_other_aggregation", json!(true));
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient, typed field readers
// ---------------------------------------------------------------------------------------------
//
// Legacy values often arrive as strings from GET query strings ("14", "true", '[{"id":…}]'), and
// PostHog's own parsers (Python int()/str_to_bool/json.loads, pydantic's lax mode) accept them,
// so every reader takes the typed JSON value or its string spelling. Messages are DRF's.

/// The value at `key`, treating `null` and `""` as absent. Every reader goes through here, so in
/// tests it records the key: the schema test compares what the parser reads with what
/// `schema::query_schemas` documents.
fn get<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    #[cfg(test)]
    KEYS_READ.with(|k| k.borrow_mut().insert(key.to_string()));
    m.get(key).filter(|v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        _ => true,
    })
}

/// Python's name for a JSON value's type, as DRF messages show it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// User text inside an error message, cut short so a huge value cannot bloat the error.
fn shown(s: &str) -> String {
    const MAX: usize = 100;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let cut: String = s.chars().take(MAX).collect();
    format!("{cut}…")
}

fn choice_error(attr: &str, got: &str, names: &[&str]) -> QueryError {
    QueryError::invalid(
        attr.to_string(),
        format!(
            "\"{}\" is not a valid choice. Expected one of: {}.",
            shown(got),
            names.join(", ")
        ),
    )
}

fn expected_dict(attr: &str, v: &Value) -> QueryError {
    QueryError::bad_json(
        attr.to_string(),
        format!(
            "Expected a dictionary of items but got type \"{}\".",
            type_name(v)
        ),
    )
}

fn expected_list(attr: &str, v: &Value) -> QueryError {
    QueryError::bad_json(
        attr.to_string(),
        format!(
            "Expected a list of items but got type \"{}\".",
            type_name(v)
        ),
    )
}

/// A JSON document embedded in a string (GET parameters), if `s` looks like one starting with
/// `open` and parses.
fn decode_embedded(s: &str, open: char) -> Option<Value> {
    if !s.trim_start().starts_with(open) {
        return None;
    }
    serde_json::from_str(s).ok()
}

fn value_str(v: &Value, attr: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(QueryError::bad_json(
            attr.to_string(),
            "Not a valid string.",
        )),
    }
}

/// DRF's BooleanField spellings.
fn value_bool(v: &Value, attr: &str) -> Result<bool> {
    let bad = || QueryError::bad_json(attr.to_string(), "Must be a valid boolean.");
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => match n.as_i64() {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err(bad()),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "on" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "off" | "0" => Ok(false),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// An integer: a JSON integer, a float with no fraction (`14.0`), or a decimal string (`"14"`).
fn value_int(v: &Value, attr: &str) -> Result<i64> {
    let bad = || QueryError::bad_json(attr.to_string(), "A valid integer is required.");
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            // Beyond ±2^53 a float no longer holds an exact integer; refuse rather than guess.
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(f as i64),
                _ => Err(bad()),
            }
        }
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

fn as_object(v: &Value, attr: Option<&str>) -> Result<Map<String, Value>> {
    let err = |v: &Value| {
        QueryError::bad_json(
            attr.map(str::to_string),
            format!(
                "Expected a dictionary of items but got type \"{}\".",
                type_name(v)
            ),
        )
    };
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::String(s) => match decode_embedded(s, '{') {
            Some(Value::Object(m)) => Ok(m),
            _ => Err(err(v)),
        },
        _ => Err(err(v)),
    }
}

fn opt_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    get(m, key).map(|v| value_str(v, key)).transpose()
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    get(m, key).map(|v| value_bool(v, key)).transpose()
}

/// An integer within `min..=max`, with DRF's range messages.
fn opt_int(m: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
    let Some(v) = get(m, key) else {
        return Ok(None);
    };
    let n = value_int(v, key)?;
    if n < min {
        return Err(QueryError::invalid(
            key.to_string(),
            format!("Ensure this value is greater than or equal to {min}."),
        ));
    }
    if n > max {
        return Err(QueryError::invalid(
            key.to_string(),
            format!("Ensure this value is less than or equal to {max}."),
        ));
    }
    Ok(Some(n))
}

fn required_int(m: &Map<String, Value>, key: &str) -> Result<i64> {
    match get(m, key) {
        Some(v) => value_int(v, key),
        None => Err(QueryError::invalid(
            key.to_string(),
            "This field is required.",
        )),
    }
}

fn opt_u32(m: &Map<String, Value>, key: &str, min: u32) -> Result<Option<u32>> {
    Ok(opt_int(m, key, i64::from(min), i64::from(u32::MAX))?.and_then(|n| u32::try_from(n).ok()))
}

/// A group type index: PostHog has group types 0 to 4.
fn opt_group_index(m: &Map<String, Value>, key: &str) -> Result<Option<u8>> {
    Ok(opt_int(m, key, 0, 4)?.and_then(|n| u8::try_from(n).ok()))
}

/// A list, or a JSON list inside a string (GET).
fn opt_list(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>> {
    let Some(v) = get(m, key) else {
        return Ok(None);
    };
    match v {
        Value::Array(items) => Ok(Some(items.clone())),
        Value::String(s) => match decode_embedded(s, '[') {
            Some(Value::Array(items)) => Ok(Some(items)),
            _ => Err(expected_list(key, v)),
        },
        _ => Err(expected_list(key, v)),
    }
}

/// A list of strings; `null`/`""` items are dropped (half-filled UI rows).
fn opt_string_list(m: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>> {
    let Some(items) = opt_list(m, key)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(s.clone()),
            _ => {
                return Err(QueryError::bad_json(
                    format!("{key}__{i}"),
                    "Not a valid string.",
                ));
            }
        }
    }
    Ok(Some(out))
}

/// An object, or a JSON object inside a string (GET).
fn opt_object(m: &Map<String, Value>, key: &str) -> Result<Option<Map<String, Value>>> {
    get(m, key).map(|v| as_object(v, Some(key))).transpose()
}

/// Property filters: a list or a group object, possibly JSON in a string; `[]` when absent.
fn opt_properties(m: &Map<String, Value>, key: &str) -> Result<Value> {
    let bad = |v: &Value| {
        QueryError::bad_json(
            key.to_string(),
            format!(
                "Expected a list or a dictionary of property filters but got type \"{}\".",
                type_name(v)
            ),
        )
    };
    match get(m, key) {
        None => Ok(Value::Array(Vec::new())),
        Some(v @ (Value::Array(_) | Value::Object(_))) => Ok(v.clone()),
        Some(v @ Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(decoded @ (Value::Array(_) | Value::Object(_))) => Ok(decoded),
            _ => Err(bad(v)),
        },
        Some(v) => Err(bad(v)),
    }
}

fn parse_choice<T>(
    v: &Value,
    attr: &str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    let s = match v {
        Value::String(s) => s,
        _ => {
            return Err(QueryError::bad_json(
                attr.to_string(),
                "Not a valid string.",
            ));
        }
    };
    parse(s).ok_or_else(|| choice_error(attr, s, names))
}

fn opt_choice<T>(
    m: &Map<String, Value>,
    key: &str,
    names: &[&str],
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    get(m, key)
        .map(|v| parse_choice(v, key, names, parse))
        .transpose()
}

/// A parser for a plain list of names, any letter case, returning the canonical spelling.
fn name_parser(names: &'static [&'static str]) -> impl Fn(&str) -> Option<&'static str> {
    move |s| {
        names
            .iter()
            .copied()
            .find(|n| n.eq_ignore_ascii_case(s.trim()))
    }
}

/// A parser for names that must match exactly (node `kind`s, display types).
fn exact_name_parser(names: &'static [&'static str]) -> impl Fn(&str) -> Option<&'static str> {
    move |s| names.iter().copied().find(|n| *n == s)
}

#[cfg(test)]
thread_local! {
    static KEYS_READ: std::cell::RefCell<std::collections::BTreeSet<String>> = Default::default();
}

/// The keys `f` made the parser read (tests only).
#[cfg(test)]
fn trace_keys(f: impl FnOnce()) -> std::collections::BTreeSet<String> {
    KEYS_READ.with(|k| k.borrow_mut().clear());
    f();
    KEYS_READ.with(|k| k.take())
}

mod schema;
pub use schema::query_schemas;

#[cfg(test)]
mod tests;
