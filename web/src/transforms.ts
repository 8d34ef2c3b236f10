// API results → the page's views: a table (what the accessible table shows and what the browser
// tests compare with the API) plus what the chart needs. Pure functions of the result JSON.

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

/** One table of numbers; `persons[r][c]` is the persons URL behind a cell, if any. */
export interface Table {
  caption: string;
  columns: string[];
  rows: (string | number)[][];
  persons?: (string | null)[][];
}

// ---------------------------------------------------------------- funnels

export interface FunnelStep {
  name: string;
  count: number;
  conversion: number; // % of the first step
  fromPrevious: number; // % of the previous step
  dropOff: number; // persons lost since the previous step
  convertedUrl: string | null;
  droppedUrl: string | null;
}

export interface FunnelSeries {
  breakdown: string | null;
  steps: FunnelStep[];
}

const pct = (a: number, b: number): number => (b > 0 ? Math.round((1000 * a) / b) / 10 : 0);

function breakdownLabel(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map((x) => (x === '' ? '(none)' : String(x))).join(', ');
  return v === '' ? '(none)' : String(v);
}

function funnelSteps(steps: Json[]): FunnelStep[] {
  const first = steps[0]?.count ?? 0;
  return steps.map((s, i) => {
    const prev = i === 0 ? s.count : steps[i - 1].count;
    return {
      name: s.custom_name || s.name,
      count: s.count,
      conversion: pct(s.count, first),
      fromPrevious: pct(s.count, prev),
      dropOff: prev - s.count,
      convertedUrl: s.converted_people_url ?? null,
      droppedUrl: s.dropped_people_url ?? null,
    };
  });
}

/** A funnel result: a list of steps, or with a breakdown a list of such lists. */
export function funnelView(result: Json[]): FunnelSeries[] {
  if (!Array.isArray(result) || result.length === 0) return [];
  if (Array.isArray(result[0])) {
    return (result as Json[][]).map((steps) => ({ breakdown: breakdownLabel(steps[0]?.breakdown_value ?? steps[0]?.breakdown), steps: funnelSteps(steps) }));
  }
  return [{ breakdown: null, steps: funnelSteps(result) }];
}

export function funnelTable(series: FunnelSeries[]): Table {
  const columns = ['Breakdown', 'Step', 'Persons', 'Conversion %', 'From previous %', 'Dropped off'];
  const rows: (string | number)[][] = [];
  const persons: (string | null)[][] = [];
  for (const s of series) {
    s.steps.forEach((st, i) => {
      rows.push([s.breakdown ?? '', `${i + 1}. ${st.name}`, st.count, st.conversion, st.fromPrevious, st.dropOff]);
      persons.push([null, null, st.convertedUrl, null, null, st.droppedUrl]);
    });
  }
  return { caption: 'Funnel steps', columns, rows, persons };
}

/** "1h 35m", "12m 3s", "45s", "2d 4h": a conversion time in seconds, two units at most. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const parts: [number, string][] = [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h'],
                                     [Math.floor((s % 3600) / 60), 'm'], [s % 60, 's']];
  const first = parts.findIndex(([v]) => v > 0);
  if (first < 0) return '0s';
  return parts.slice(first, first + 2).filter(([v]) => v > 0).map(([v, u]) => `${v}${u}`).join(' ');
}

export interface TimeToConvert {
  bins: { seconds: number; label: string; count: number }[];
  average: number | null;
}

/** funnel_viz_type time_to_convert: {bins: [[seconds, persons]], average_conversion_time}. */
export function timeToConvertView(result: Json): TimeToConvert {
  const bins = (result?.bins ?? []).map(([sec, count]: [number, number]) => ({ seconds: sec, label: formatDuration(sec), count }));
  return { bins, average: result?.average_conversion_time ?? null };
}

export function timeToConvertTable(t: TimeToConvert): Table {
  return {
    caption: `Time to convert${t.average !== null ? ` (average ${formatDuration(t.average)})` : ''}`,
    columns: ['From (seconds)', 'From', 'Persons'],
    rows: t.bins.map((b) => [b.seconds, b.label, b.count]),
  };
}

/** funnel_viz_type trends: conversion rate % per interval, one series per breakdown value. */
export function funnelTrendsView(result: Json[]): Series[] {
  return (Array.isArray(result) ? result : []).map((r) => {
    const bd = breakdownLabel(r.breakdown_value);
    return {
      name: !bd || bd === 'all' ? 'Conversion rate %' : `${bd} (conversion %)`,
      labels: (r.labels ?? r.days ?? []).map(String),
      data: (r.data ?? []).map(Number),
      total: Number(r.count ?? 0),
      personsUrls: [],
      compare: null,
    };
  });
}

// ---------------------------------------------------------------- trends, stickiness, lifecycle

export interface Series {
  name: string;
  labels: string[];
  data: number[];
  total: number; // count, or aggregated_value for aggregating displays
  personsUrls: (string | null)[];
  compare: string | null; // 'current' / 'previous' with compare
}

export function seriesName(s: Json): string {
  const base = s.breakdown_value !== undefined && s.breakdown_value !== null && s.action
    ? `${s.action.custom_name || s.action.name || s.label} · ${breakdownLabel(s.breakdown_value)}`
    : s.label;
  return s.compare_label ? `${base} (${s.compare_label})` : String(base);
}

export function trendsView(result: Json[]): Series[] {
  if (!Array.isArray(result)) return [];
  return result.map((s) => ({
    name: seriesName(s),
    labels: (s.labels ?? s.days ?? []).map(String),
    data: (s.data ?? []).map(Number),
    total: Number(s.aggregated_value ?? s.count ?? 0),
    personsUrls: (s.persons_urls ?? []).map((p: Json) => p?.url ?? null),
    compare: s.compare_label ?? null,
  }));
}

/** Displays that show one number per series instead of a time series. */
export function isAggregate(display: string | undefined): boolean {
  return ['ActionsPie', 'BoldNumber', 'ActionsTable', 'ActionsBarValue', 'WorldMap'].includes(display ?? '');
}

export function trendsTable(series: Series[], aggregate: boolean): Table {
  if (aggregate || series.every((s) => s.labels.length === 0)) {
    return { caption: 'Totals', columns: ['Series', 'Total'], rows: series.map((s) => [s.name, s.total]) };
  }
  const labels = series[0]?.labels ?? [];
  return {
    caption: 'Values per interval',
    columns: ['Series', ...labels, 'Total'],
    rows: series.map((s) => [s.name, ...s.data, s.total]),
    persons: series.map((s) => [null, ...s.data.map((_, i) => s.personsUrls[i] ?? null), null]),
  };
}

// ---------------------------------------------------------------- retention

export interface Cohort {
  label: string;
  date: string;
  size: number;
  counts: number[];
  percents: number[];
}

export function retentionView(result: Json[]): Cohort[] {
  if (!Array.isArray(result)) return [];
  return result.map((r) => {
    const counts = (r.values ?? []).map((v: Json) => Number(v.count));
    const size = counts[0] ?? 0;
    return { label: r.label, date: String(r.date ?? '').slice(0, 10), size, counts, percents: counts.map((c: number) => pct(c, size)) };
  });
}

/** The retention curve: for each period, the mean % over the cohorts old enough to have it
 * (cohort i of n has n - i periods so far), as PostHog's line view. */
export function retentionCurve(cohorts: Cohort[]): number[] {
  const periods = Math.max(0, ...cohorts.map((c) => c.counts.length));
  const out: number[] = [];
  for (let p = 0; p < periods; p++) {
    const seen = cohorts.filter((c, i) => i + p < cohorts.length && c.size > 0 && p < c.counts.length);
    out.push(seen.length ? Math.round((10 * seen.reduce((a, c) => a + c.percents[p], 0)) / seen.length) / 10 : 0);
  }
  return out;
}

export function retentionTable(cohorts: Cohort[]): Table {
  const periods = Math.max(0, ...cohorts.map((c) => c.counts.length));
  const columns = ['Cohort', 'Date', 'Persons', ...Array.from({ length: periods }, (_, i) => `Period ${i}`)];
  return {
    caption: 'Retention by cohort (persons)',
    columns,
    rows: cohorts.map((c) => [c.label, c.date, c.size, ...c.counts]),
  };
}

// ---------------------------------------------------------------- paths

export interface Sankey {
  nodes: { name: string }[];
  links: { source: string; target: string; value: number }[];
}

/** Paths edges {source "1_/a", target "2_/b", value} → Sankey nodes and links. The step prefix
 * keeps the graph acyclic (a page seen at steps 1 and 3 is two nodes), as ECharts needs. */
export function pathsView(result: Json[]): Sankey {
  const names = new Set<string>();
  const links = (Array.isArray(result) ? result : []).map((e) => {
    names.add(e.source);
    names.add(e.target);
    return { source: String(e.source), target: String(e.target), value: Number(e.value) };
  });
  return { nodes: [...names].map((name) => ({ name })), links };
}

/** "3_/pricing" → "/pricing" (the node label). */
export function pathNodeLabel(name: string): string {
  return name.replace(/^\d+_/, '');
}

export function pathsTable(s: Sankey): Table {
  return {
    caption: 'Path edges',
    columns: ['From', 'To', 'Persons'],
    rows: [...s.links].sort((a, b) => b.value - a.value).map((l) => [l.source, l.target, l.value]),
  };
}

/** Persons list answers (trends/funnel/... persons endpoints): {results: [{people: [...]}]} or a
 * plain {results: [person]}; each person shown by name, email or distinct id. */
export function personsFromAnswer(answer: Json): { id: string; label: string }[] {
  const res = answer?.results ?? [];
  const people: Json[] = Array.isArray(res) && res.length && Array.isArray(res[0]?.people) ? res.flatMap((r: Json) => r.people) : res;
  return people.map((p: Json) => ({
    id: String(p.uuid ?? p.id ?? ''),
    label: String(p.properties?.email ?? p.name ?? p.distinct_ids?.[0] ?? p.uuid ?? p.id ?? ''),
  }));
}
