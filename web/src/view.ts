// One insight result drawn by kind: chart + accessible table (thin: the numbers come from
// transforms.ts, the options from charts.ts).
import { funnelOption, funnelTrendsOption, heatStyle, lifecycleOption, pathsOption, retentionOption, timeToConvertOption, trendsOption } from './charts';
import type { Filters, Kind } from './query';
import {
  funnelTable,
  funnelTrendsView,
  funnelView,
  isAggregate,
  pathsTable,
  pathsView,
  retentionTable,
  retentionView,
  timeToConvertTable,
  timeToConvertView,
  trendsTable,
  trendsView,
} from './transforms';
import { chart, dataTable, h } from './ui';

export type OnPersons = ((url: string, title: string) => void) | undefined;

export function drawResult(kind: Kind, filters: Filters, result: unknown, onPersons: OnPersons): { el: HTMLElement; dispose: () => void } {
  const box = h('div', { class: 'result', 'data-insight-kind': kind });
  const disposers: (() => void)[] = [];
  const addChart = (option: Record<string, unknown> | null, label: string) => {
    if (!option) return;
    const c = chart(option, label, onPersons);
    disposers.push(c.dispose);
    box.append(c.el);
  };
  const rows = Array.isArray(result) ? (result as unknown[]) : [];
  const viz = kind === 'FUNNELS' ? String(filters.funnel_viz_type ?? 'steps') : '';
  if (viz === 'time_to_convert' && result && typeof result === 'object' && !Array.isArray(result)) {
    const t = timeToConvertView(result);
    addChart(timeToConvertOption(t), 'Funnel: time to convert');
    box.append(dataTable(timeToConvertTable(t), 'time_to_convert'));
  } else if (rows.length === 0) {
    box.append(h('p', { class: 'empty', text: 'No data for this query.' }));
  } else if (viz === 'trends') {
    const series = funnelTrendsView(rows);
    addChart(funnelTrendsOption(series), 'Funnel: conversion rate per interval');
    box.append(dataTable(trendsTable(series, false), 'funnel_trends'));
  } else if (kind === 'FUNNELS') {
    const series = funnelView(rows);
    addChart(funnelOption(series), 'Funnel: persons per step');
    box.append(dataTable(funnelTable(series), 'funnel', onPersons));
  } else if (kind === 'RETENTION') {
    const cohorts = retentionView(rows);
    const t = retentionTable(cohorts);
    // The cohort table is the heatmap: each period cell coloured by its % of the cohort.
    // Periods a cohort has not reached yet (cohort r of n has n - r) stay uncoloured.
    box.append(dataTable(t, 'retention', undefined, (r, c) =>
      c >= 3 && r + c - 3 < cohorts.length ? heatStyle(cohorts[r].percents[c - 3] ?? 0) : null));
    addChart(retentionOption(cohorts), 'Retention curve');
  } else if (kind === 'PATHS') {
    const s = pathsView(rows);
    addChart(pathsOption(s), 'Paths between steps (Sankey)');
    box.append(dataTable(pathsTable(s), 'paths'));
  } else {
    const series = trendsView(rows);
    const display = String(filters.display ?? 'ActionsLineGraph');
    const aggregate = kind === 'TRENDS' && isAggregate(display);
    if (kind === 'LIFECYCLE') addChart(lifecycleOption(series), 'Lifecycle: stacked bars per status');
    else if (kind === 'STICKINESS') addChart(trendsOption(series, 'ActionsBar'), 'Stickiness: persons per number of active intervals');
    else if (display === 'BoldNumber') {
      box.append(h('p', { class: 'bold-number', 'aria-label': 'Total' }, series.map((s) => s.total.toLocaleString('en-US')).join(' · ')));
    } else addChart(trendsOption(series, display), `Trends (${display})`);
    box.append(dataTable(trendsTable(series, aggregate), kind.toLowerCase(), onPersons));
  }
  return { el: box, dispose: () => disposers.forEach((d) => d()) };
}
