// Query building: a saved insight's legacy filter (PostHog's `filters`) edited by the page's
// controls, the compute endpoint that runs it, and the saved-insights list parameters.
// Pure functions: every edit returns a new filter.

export type Filters = Record<string, unknown>;
export type Kind = 'TRENDS' | 'FUNNELS' | 'RETENTION' | 'STICKINESS' | 'LIFECYCLE' | 'PATHS';

const QUERY_KINDS: Record<string, Kind> = {
  TrendsQuery: 'TRENDS',
  FunnelsQuery: 'FUNNELS',
  RetentionQuery: 'RETENTION',
  StickinessQuery: 'STICKINESS',
  LifecycleQuery: 'LIFECYCLE',
  PathsQuery: 'PATHS',
};

/** The kind of a saved insight, from its filter or (query insights) its query node. */
export function insightKind(filters: Filters | null | undefined, query?: unknown): Kind {
  const q = query as { kind?: string; source?: { kind?: string } } | null | undefined;
  const node = q?.source?.kind ?? q?.kind;
  if (node && QUERY_KINDS[node]) return QUERY_KINDS[node];
  const k = String(filters?.insight ?? 'TRENDS').toUpperCase();
  return (Object.values(QUERY_KINDS) as string[]).includes(k) ? (k as Kind) : 'TRENDS';
}

/** The legacy compute endpoint (under /api/projects/:id/) of a kind. */
export function computePath(kind: Kind): string {
  switch (kind) {
    case 'FUNNELS':
      return 'insights/funnel/';
    case 'RETENTION':
      return 'insights/retention/';
    case 'PATHS':
      return 'insights/path/';
    default:
      return 'insights/trend/'; // trends, stickiness and lifecycle
  }
}

export const DATE_PRESETS: { value: string; label: string }[] = [
  { value: '-24h', label: 'Last 24 hours' },
  { value: '-7d', label: 'Last 7 days' },
  { value: '-14d', label: 'Last 14 days' },
  { value: '-30d', label: 'Last 30 days' },
  { value: '-90d', label: 'Last 90 days' },
  { value: 'mStart', label: 'This month' },
  { value: 'all', label: 'All time' },
];

export const INTERVALS = ['hour', 'day', 'week', 'month'] as const;

/** Kinds whose filter has an interval control (retention uses `period`, paths and funnels none). */
export function hasInterval(kind: Kind): boolean {
  return kind === 'TRENDS' || kind === 'STICKINESS' || kind === 'LIFECYCLE';
}

export const FUNNEL_VIZ: { value: string; label: string }[] = [
  { value: 'steps', label: 'Steps' },
  { value: 'time_to_convert', label: 'Time to convert' },
  { value: 'trends', label: 'Conversion trends' },
];

/** The funnel's view; conversion trends need an interval (PostHog's default: day). */
export function withFunnelViz(f: Filters, viz: string): Filters {
  if (!FUNNEL_VIZ.some((v) => v.value === viz)) throw new Error(`unknown funnel view ${viz}`);
  const out: Filters = { ...f, funnel_viz_type: viz };
  if (viz === 'trends' && !out.interval) out.interval = 'day';
  return out;
}

/** Whether the interval control applies to this filter. */
export function usesInterval(kind: Kind, f: Filters): boolean {
  return hasInterval(kind) || (kind === 'FUNNELS' && f.funnel_viz_type === 'trends');
}

/** Kinds that take a breakdown here (PostHog: lifecycle, stickiness and paths have none). */
export function hasBreakdown(kind: Kind): boolean {
  return kind === 'TRENDS' || kind === 'FUNNELS' || kind === 'RETENTION';
}

export function withDateRange(f: Filters, dateFrom: string, dateTo: string | null = null): Filters {
  const out: Filters = { ...f, date_from: dateFrom };
  if (dateTo) out.date_to = dateTo;
  else delete out.date_to;
  return out;
}

export function withInterval(f: Filters, interval: string): Filters {
  if (!(INTERVALS as readonly string[]).includes(interval)) throw new Error(`unknown interval ${interval}`);
  return { ...f, interval };
}

/** An event-property breakdown, or none (empty property). */
export function withBreakdown(f: Filters, property: string): Filters {
  const out: Filters = { ...f };
  delete out.breakdowns;
  if (!property.trim()) {
    delete out.breakdown;
    delete out.breakdown_type;
    return out;
  }
  out.breakdown = property.trim();
  out.breakdown_type = 'event';
  return out;
}

export function withCompare(f: Filters, compare: boolean): Filters {
  const out: Filters = { ...f };
  if (compare) out.compare = true;
  else delete out.compare;
  return out;
}

export function withDisplay(f: Filters, display: string): Filters {
  return { ...f, display };
}

/** The breakdown a filter has, as the control shows it ('' for none). */
export function breakdownOf(f: Filters): string {
  const b = f.breakdown;
  if (typeof b === 'string') return b;
  if (Array.isArray(b) && typeof b[0] === 'string') return b[0];
  return '';
}

export interface ListState {
  search: string;
  favorited: boolean;
  page: number; // 0-based
  pageSize: number;
}

/** GET insights/ parameters of the saved-insights list (PostHog's saved=true list). */
export function listParams(s: ListState): Record<string, string | number> {
  const p: Record<string, string | number> = {
    saved: 'true',
    basic: 'true',
    order: '-last_modified_at',
    limit: s.pageSize,
    offset: s.page * s.pageSize,
  };
  if (s.search.trim()) p.search = s.search.trim();
  if (s.favorited) p.favorited = 'true';
  return p;
}

export function pageCount(count: number, pageSize: number): number {
  return Math.max(1, Math.ceil(count / pageSize));
}

export interface PropertyFilter {
  key: string;
  value: string;
  operator: string;
}

export interface BuilderState {
  kind: 'TRENDS' | 'FUNNELS';
  events: string[];
  properties: PropertyFilter[];
  dateFrom: string;
  interval: string;
  breakdown: string;
  display: string;
}

/** The legacy filter a "new insight" builder state saves. Empty event names are dropped. */
export function builderFilters(s: BuilderState): Filters {
  const events = s.events
    .map((e) => e.trim())
    .filter((e) => e)
    .map((id, order) => ({ id, name: id, type: 'events', order }));
  if (events.length === 0) throw new Error('Pick at least one event.');
  if (s.kind === 'FUNNELS' && events.length < 2) throw new Error('A funnel needs at least two steps.');
  const properties = s.properties
    .filter((p) => p.key.trim())
    .map((p) => ({ key: p.key.trim(), value: p.value, operator: p.operator || 'exact', type: 'event' }));
  let f: Filters = { insight: s.kind, events, date_from: s.dateFrom, properties };
  if (s.kind === 'TRENDS') f = { ...f, interval: s.interval, display: s.display || 'ActionsLineGraph' };
  else f = { ...f, funnel_viz_type: 'steps', funnel_window_interval: 14, funnel_window_interval_unit: 'day' };
  return withBreakdown(f, s.breakdown);
}
