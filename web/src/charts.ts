// Views → ECharts options (pure: plain objects, tested without a browser). `meta` on each series
// says which persons URLs a click on a data point opens.
import {
  Cohort,
  FunnelSeries,
  Sankey,
  Series,
  TimeToConvert,
  pathNodeLabel,
  retentionCurve,
} from './transforms';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Option = Record<string, any>;

const base: Option = {
  animation: false, // first paint matters more than motion
  tooltip: { trigger: 'item' },
  grid: { left: 48, right: 16, top: 40, bottom: 40, containLabel: true },
};

export function funnelOption(series: FunnelSeries[]): Option {
  const steps = series[0]?.steps.map((s, i) => `${i + 1}. ${s.name}`) ?? [];
  return {
    ...base,
    legend: { top: 0, type: 'scroll' },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    xAxis: { type: 'category', data: steps, axisLabel: { interval: 0, overflow: 'truncate', width: 120 } },
    yAxis: { type: 'value', name: 'persons' },
    series: series.map((s) => ({
      type: 'bar',
      name: s.breakdown ?? 'Persons',
      data: s.steps.map((st) => st.count),
      label: { show: series.length <= 3, position: 'top', formatter: (p: any) => `${s.steps[p.dataIndex].conversion}%` },
      meta: { persons: s.steps.map((st) => st.convertedUrl) },
    })),
  };
}

export type TrendsDisplay =
  | 'ActionsLineGraph'
  | 'ActionsLineGraphCumulative'
  | 'ActionsBar'
  | 'ActionsAreaGraph'
  | 'ActionsPie'
  | 'ActionsBarValue'
  | 'BoldNumber'
  | 'ActionsTable';

export const DISPLAYS: { value: TrendsDisplay; label: string }[] = [
  { value: 'ActionsLineGraph', label: 'Line' },
  { value: 'ActionsLineGraphCumulative', label: 'Cumulative line' },
  { value: 'ActionsBar', label: 'Bar' },
  { value: 'ActionsAreaGraph', label: 'Area' },
  { value: 'ActionsBarValue', label: 'Bar (totals)' },
  { value: 'ActionsPie', label: 'Pie' },
  { value: 'BoldNumber', label: 'Number' },
  { value: 'ActionsTable', label: 'Table' },
];

/** Trends (and stickiness) in a display; null for displays drawn as HTML (number, table). */
export function trendsOption(series: Series[], display: string, stacked = false): Option | null {
  if (display === 'BoldNumber' || display === 'ActionsTable') return null;
  if (display === 'ActionsPie') {
    return {
      ...base,
      legend: { top: 0, type: 'scroll' },
      series: [{ type: 'pie', radius: ['35%', '65%'], data: series.map((s) => ({ name: s.name, value: s.total })) }],
    };
  }
  if (display === 'ActionsBarValue') {
    return {
      ...base,
      xAxis: { type: 'value' },
      yAxis: { type: 'category', data: series.map((s) => s.name) },
      series: [{ type: 'bar', data: series.map((s) => s.total) }],
    };
  }
  const bar = display === 'ActionsBar' || stacked;
  return {
    ...base,
    legend: { top: 0, type: 'scroll' },
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'category', data: series[0]?.labels ?? [] },
    yAxis: { type: 'value' },
    series: series.map((s) => ({
      type: bar ? 'bar' : 'line',
      name: s.name,
      data: s.data, // cumulative displays arrive summed from the API
      stack: stacked ? 'total' : undefined,
      areaStyle: display === 'ActionsAreaGraph' ? {} : undefined,
      lineStyle: s.compare === 'previous' ? { type: 'dashed' } : undefined,
      meta: { persons: s.personsUrls },
    })),
  };
}

/** Lifecycle: stacked bars, dormant below zero, in PostHog's status colours. */
export function lifecycleOption(series: Series[]): Option {
  const colours: Record<string, string> = { new: '#1d4aff', returning: '#388600', resurrecting: '#a1bf00', dormant: '#db3707' };
  const opt = trendsOption(series, 'ActionsBar', true) as Option;
  opt.series = opt.series.map((s: Option) => {
    const status = Object.keys(colours).find((k) => String(s.name).endsWith(k));
    return { ...s, itemStyle: status ? { color: colours[status] } : undefined };
  });
  return opt;
}

export function retentionOption(cohorts: Cohort[]): Option {
  const curve = retentionCurve(cohorts);
  return {
    ...base,
    tooltip: { trigger: 'axis', valueFormatter: (v: number) => `${v}%` },
    xAxis: { type: 'category', data: curve.map((_, i) => `Period ${i}`) },
    yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } },
    series: [{ type: 'line', name: 'Retained (mean of cohorts)', data: curve }],
  };
}

export function pathsOption(s: Sankey): Option {
  return {
    ...base,
    tooltip: { trigger: 'item' },
    series: [
      {
        type: 'sankey',
        data: s.nodes,
        links: s.links,
        emphasis: { focus: 'adjacency' },
        nodeAlign: 'left',
        label: { formatter: (p: any) => pathNodeLabel(p.name) },
        lineStyle: { color: 'gradient', curveness: 0.5 },
      },
    ],
  };
}

/** The style of a retention heatmap cell: a darker blue for a higher %, white text on dark. */
export function heatStyle(percent: number): string {
  const a = Math.max(0, Math.min(1, percent / 100));
  return `background:rgba(29, 74, 255, ${(0.08 + 0.8 * a).toFixed(2)});color:${a > 0.55 ? '#fff' : '#151515'}`;
}

/** Time to convert: persons per duration bin. */
export function timeToConvertOption(t: TimeToConvert): Option {
  return {
    ...base,
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    xAxis: { type: 'category', data: t.bins.map((b) => b.label), name: 'time to convert' },
    yAxis: { type: 'value', name: 'persons' },
    series: [{ type: 'bar', name: 'Persons', data: t.bins.map((b) => b.count) }],
  };
}

/** Funnel conversion trends: conversion % per interval. */
export function funnelTrendsOption(series: Series[]): Option {
  const opt = trendsOption(series, 'ActionsLineGraph') as Option;
  return { ...opt, yAxis: { type: 'value', max: 100, axisLabel: { formatter: '{value}%' } } };
}
