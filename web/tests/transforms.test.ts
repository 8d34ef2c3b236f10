import { describe, expect, it } from 'vitest';
import {
  formatDuration, funnelTable, funnelTrendsView, funnelView, isAggregate, timeToConvertTable, timeToConvertView, pathNodeLabel, pathsTable, pathsView, personsFromAnswer,
  retentionCurve, retentionTable, retentionView, seriesName, trendsTable, trendsView,
} from '../src/transforms';

// Shapes as the API answers them (trimmed).
const step = (name: string, count: number, order: number, extra: object = {}) => ({
  name, count, order, type: 'events', custom_name: null, converted_people_url: `/c/${order}`,
  dropped_people_url: order ? `/d/${order}` : null, ...extra,
});

describe('funnels', () => {
  it('computes conversion and drop-off per step', () => {
    const [s] = funnelView([step('view_item', 2317, 0), step('add_to_cart', 1952, 1), step('purchase', 755, 2)]);
    expect(s.breakdown).toBeNull();
    expect(s.steps.map((x) => [x.count, x.conversion, x.fromPrevious, x.dropOff])).toEqual([
      [2317, 100, 100, 0], [1952, 84.2, 84.2, 365], [755, 32.6, 38.7, 1197]]);
    expect(s.steps[1].convertedUrl).toBe('/c/1');
    expect(s.steps[0].droppedUrl).toBeNull();
  });
  it('reads breakdown series (a list of step lists)', () => {
    const v = funnelView([
      [step('a', 10, 0, { breakdown_value: ['Chrome'] }), step('b', 5, 1, { breakdown_value: ['Chrome'] })],
      [step('a', 4, 0, { breakdown_value: [''] }), step('b', 0, 1, { breakdown_value: [''] })],
    ]);
    expect(v.map((s) => s.breakdown)).toEqual(['Chrome', '(none)']);
    expect(v[1].steps[1].conversion).toBe(0);
    const t = funnelTable(v);
    expect(t.rows[1]).toEqual(['Chrome', '2. b', 5, 50, 50, 5]);
    expect(t.persons?.[1]).toEqual([null, null, '/c/1', null, null, '/d/1']);
  });
  it('is empty for an empty result', () => {
    expect(funnelView([])).toEqual([]);
  });
});

const series = (label: string, data: number[], extra: object = {}) => ({
  label, data, count: data.reduce((a, b) => a + b, 0), labels: data.map((_, i) => `${i + 1}-Dec-2026`),
  days: data.map((_, i) => `2026-12-0${i + 1}`), persons_urls: data.map((_, i) => ({ url: `/p/${label}/${i}` })),
  action: { id: '$pageview', name: '$pageview', custom_name: null }, ...extra,
});

describe('trends', () => {
  it('keeps data, labels, totals and persons URLs', () => {
    const [s] = trendsView([series('$pageview', [3, 4, 5])]);
    expect(s).toMatchObject({ name: '$pageview', data: [3, 4, 5], total: 12, labels: ['1-Dec-2026', '2-Dec-2026', '3-Dec-2026'] });
    const t = trendsTable([s], false);
    expect(t.columns).toEqual(['Series', '1-Dec-2026', '2-Dec-2026', '3-Dec-2026', 'Total']);
    expect(t.rows).toEqual([['$pageview', 3, 4, 5, 12]]);
    expect(t.persons?.[0]).toEqual([null, '/p/$pageview/0', '/p/$pageview/1', '/p/$pageview/2', null]);
  });
  it('names breakdown and compare series', () => {
    expect(seriesName(series('Chrome', [1], { breakdown_value: 'Chrome' }))).toBe('$pageview · Chrome');
    expect(seriesName(series('$pageview', [1], { compare_label: 'previous', compare: true }))).toBe('$pageview (previous)');
    expect(seriesName({ label: 'x', breakdown_value: '', action: { name: 'e' } })).toBe('e · (none)');
  });
  it('uses aggregated_value for aggregating displays', () => {
    const s = trendsView([{ label: '$pageview', data: [], days: [], count: 0, aggregated_value: 2536 }]);
    expect(s[0].total).toBe(2536);
    expect(trendsTable(s, true)).toEqual({ caption: 'Totals', columns: ['Series', 'Total'], rows: [['$pageview', 2536]] });
    expect(isAggregate('ActionsPie') && isAggregate('BoldNumber') && !isAggregate('ActionsLineGraph') && !isAggregate(undefined)).toBe(true);
  });
  it('reads stickiness (numeric days) and lifecycle (status series)', () => {
    const [st] = trendsView([{ label: '$pageview', data: [724, 446], days: [1, 2], labels: ['1 day', '2 days'], count: 1170 }]);
    expect(st.labels).toEqual(['1 day', '2 days']);
    const lc = trendsView([{ label: '$pageview - dormant', data: [-3.0, -2.0], days: ['a', 'b'], count: -5.0, status: 'dormant' }]);
    expect(lc[0]).toMatchObject({ name: '$pageview - dormant', data: [-3, -2], total: -5 });
  });
});

const cohort = (label: string, date: string, counts: number[]) => ({
  label, date, values: counts.map((count, i) => ({ count, label: `Week ${i}`, people: [] })), breakdown_value: null,
});

describe('retention', () => {
  const result = [cohort('Week 0', '2026-11-01T00:00:00Z', [200, 100, 50]), cohort('Week 1', '2026-11-08T00:00:00Z', [100, 30, 0]), cohort('Week 2', '2026-11-15T00:00:00Z', [50, 0, 0])];
  it('gives the cohort table in persons with percents', () => {
    const c = retentionView(result);
    expect(c[0]).toEqual({ label: 'Week 0', date: '2026-11-01', size: 200, counts: [200, 100, 50], percents: [100, 50, 25] });
    const t = retentionTable(c);
    expect(t.columns).toEqual(['Cohort', 'Date', 'Persons', 'Period 0', 'Period 1', 'Period 2']);
    expect(t.rows[1]).toEqual(['Week 1', '2026-11-08', 100, 100, 30, 0]);
  });
  it('averages each period over the cohorts that reached it', () => {
    // period 1: cohorts 0 and 1 (50%, 30%); period 2: cohort 0 only (25%).
    expect(retentionCurve(retentionView(result))).toEqual([100, 40, 25]);
  });
  it('skips empty cohorts in the curve', () => {
    expect(retentionCurve(retentionView([cohort('Week 0', '', [0, 0]), cohort('Week 1', '', [10, 0])]))).toEqual([100, 0]);
  });
});

describe('paths', () => {
  const edges = [
    { source: '1_/', target: '2_/pricing', value: 5, average_conversion_time: 1 },
    { source: '2_/pricing', target: '3_/', value: 9, average_conversion_time: 1 },
  ];
  it('gives Sankey nodes (one per step and name) and links', () => {
    const s = pathsView(edges);
    expect(s.nodes).toEqual([{ name: '1_/' }, { name: '2_/pricing' }, { name: '3_/' }]);
    expect(s.links[0]).toEqual({ source: '1_/', target: '2_/pricing', value: 5 });
    expect(pathsTable(s).rows).toEqual([['2_/pricing', '3_/', 9], ['1_/', '2_/pricing', 5]]);
    expect(pathNodeLabel('12_https://x/1_y')).toBe('https://x/1_y');
  });
});

describe('persons answers', () => {
  it('reads actor lists with people and plain person lists', () => {
    const people = [{ id: 8, uuid: 'u8', name: 'anon-8', distinct_ids: ['anon-8'], properties: {} },
                    { id: 9, uuid: 'u9', distinct_ids: ['d9'], properties: { email: 'a@b.c' } }];
    expect(personsFromAnswer({ results: [{ count: 2, people }] })).toEqual([{ id: 'u8', label: 'anon-8' }, { id: 'u9', label: 'a@b.c' }]);
    expect(personsFromAnswer({ results: people }).length).toBe(2);
    expect(personsFromAnswer({})).toEqual([]);
  });
});

describe('funnel views', () => {
  it('formats durations in two units at most', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(45)).toBe('45s');
    expect(formatDuration(527)).toBe('8m 47s');
    expect(formatDuration(5671.5)).toBe('1h 34m');
    expect(formatDuration(3600)).toBe('1h');
    expect(formatDuration(90061)).toBe('1d 1h');
  });
  it('reads time-to-convert bins', () => {
    const t = timeToConvertView({ bins: [[527.0, 28], [1597.0, 59]], average_conversion_time: 5671.5 });
    expect(t.bins).toEqual([{ seconds: 527, label: '8m 47s', count: 28 }, { seconds: 1597, label: '26m 37s', count: 59 }]);
    const tab = timeToConvertTable(t);
    expect(tab.caption).toBe('Time to convert (average 1h 34m)');
    expect(tab.rows).toEqual([[527, '8m 47s', 28], [1597, '26m 37s', 59]]);
    expect(timeToConvertView(null).bins).toEqual([]);
  });
  it('reads conversion trends, one series per breakdown', () => {
    const s = funnelTrendsView([{ data: [28.41, 34.0], days: ['2026-11-27', '2026-11-28'], labels: ['27-Nov-2026', '28-Nov-2026'], count: 2, breakdown_value: ['all'] },
                                { data: [10, 0], labels: ['a', 'b'], count: 2, breakdown_value: ['Chrome'] }]);
    expect(s.map((x) => x.name)).toEqual(['Conversion rate %', 'Chrome (conversion %)']);
    expect(s[0].data).toEqual([28.41, 34]);
    expect(s[0].labels).toEqual(['27-Nov-2026', '28-Nov-2026']);
  });
});
