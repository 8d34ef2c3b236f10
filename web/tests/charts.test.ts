import { describe, expect, it } from 'vitest';
import { funnelOption, funnelTrendsOption, heatStyle, lifecycleOption, pathsOption, retentionOption, timeToConvertOption, trendsOption } from '../src/charts';
import type { Series } from '../src/transforms';

const s = (name: string, data: number[], compare: string | null = null): Series => ({
  name, data, labels: data.map((_, i) => `d${i}`), total: data.reduce((a, b) => a + b, 0), personsUrls: data.map((_, i) => `/p/${i}`), compare,
});

describe('trends options', () => {
  it('draws lines, bars and areas from the series data, with persons URLs for clicks', () => {
    const line = trendsOption([s('a', [1, 2])], 'ActionsLineGraph')!;
    expect(line.xAxis.data).toEqual(['d0', 'd1']);
    expect(line.series[0]).toMatchObject({ type: 'line', name: 'a', data: [1, 2], meta: { persons: ['/p/0', '/p/1'] } });
    expect(trendsOption([s('a', [1])], 'ActionsBar')!.series[0].type).toBe('bar');
    expect(trendsOption([s('a', [1])], 'ActionsAreaGraph')!.series[0].areaStyle).toEqual({});
    expect(trendsOption([s('a', [1, 3])], 'ActionsLineGraphCumulative')!.series[0].data).toEqual([1, 3]);
  });
  it('dashes the previous period of a compare', () => {
    expect(trendsOption([s('a', [1], 'previous')], 'ActionsLineGraph')!.series[0].lineStyle).toEqual({ type: 'dashed' });
  });
  it('draws totals as a pie or value bars; number and table are HTML', () => {
    const pie = trendsOption([s('US', [2, 3]), s('DE', [1])], 'ActionsPie')!;
    expect(pie.series[0].data).toEqual([{ name: 'US', value: 5 }, { name: 'DE', value: 1 }]);
    expect(trendsOption([s('US', [2, 3])], 'ActionsBarValue')!.series[0].data).toEqual([5]);
    expect(trendsOption([s('a', [1])], 'BoldNumber')).toBeNull();
    expect(trendsOption([s('a', [1])], 'ActionsTable')).toBeNull();
  });
  it('stacks lifecycle bars in status colours', () => {
    const o = lifecycleOption([s('$pageview - new', [1]), s('$pageview - dormant', [-1])]);
    expect(o.series.map((x: { stack: string; type: string }) => [x.type, x.stack])).toEqual([['bar', 'total'], ['bar', 'total']]);
    expect(o.series[1].itemStyle).toEqual({ color: '#db3707' });
  });
});

describe('other options', () => {
  it('funnel bars per breakdown with converted persons', () => {
    const o = funnelOption([{ breakdown: 'Chrome', steps: [
      { name: 'a', count: 10, conversion: 100, fromPrevious: 100, dropOff: 0, convertedUrl: '/c0', droppedUrl: null },
      { name: 'b', count: 4, conversion: 40, fromPrevious: 40, dropOff: 6, convertedUrl: '/c1', droppedUrl: '/d1' }] }]);
    expect(o.xAxis.data).toEqual(['1. a', '2. b']);
    expect(o.series[0]).toMatchObject({ name: 'Chrome', data: [10, 4], meta: { persons: ['/c0', '/c1'] } });
  });
  it('retention curve in percent', () => {
    const o = retentionOption([{ label: 'W0', date: '', size: 10, counts: [10, 5], percents: [100, 50] },
                               { label: 'W1', date: '', size: 4, counts: [4, 0], percents: [100, 0] }]);
    expect(o.series[0].data).toEqual([100, 50]); // period 1 only from W0, the one cohort old enough
    expect(o.yAxis.max).toBe(100);
  });
  it('paths as a Sankey', () => {
    const o = pathsOption({ nodes: [{ name: '1_a' }, { name: '2_b' }], links: [{ source: '1_a', target: '2_b', value: 3 }] });
    expect(o.series[0].type).toBe('sankey');
    expect(o.series[0].label.formatter({ name: '2_b' })).toBe('b');
  });
  it('heatmap cells darken with the percentage', () => {
    expect(heatStyle(0)).toContain('0.08');
    expect(heatStyle(100)).toContain('0.88');
    expect(heatStyle(100)).toContain('color:#fff');
    expect(heatStyle(250)).toBe(heatStyle(100));
  });
});

describe('funnel view options', () => {
  it('time to convert as bars of persons per bin', () => {
    const o = timeToConvertOption({ bins: [{ seconds: 60, label: '1m', count: 3 }], average: 60 });
    expect(o.xAxis.data).toEqual(['1m']);
    expect(o.series[0]).toMatchObject({ type: 'bar', data: [3] });
  });
  it('conversion trends as a % line', () => {
    const o = funnelTrendsOption([s('Conversion rate %', [20, 30])]);
    expect(o.series[0]).toMatchObject({ type: 'line', data: [20, 30] });
    expect(o.yAxis.max).toBe(100);
  });
});
