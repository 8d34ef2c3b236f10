import { describe, expect, it } from 'vitest';
import {
  breakdownOf, builderFilters, computePath, hasBreakdown, hasInterval, insightKind, listParams, pageCount,
  usesInterval, withBreakdown, withCompare, withDateRange, withDisplay, withFunnelViz, withInterval,
} from '../src/query';

const trend = { insight: 'TRENDS', events: [{ id: '$pageview' }], date_from: '-7d', interval: 'day' };

describe('insight kinds', () => {
  it('reads the legacy filter, defaulting to trends', () => {
    expect(insightKind({ insight: 'FUNNELS' })).toBe('FUNNELS');
    expect(insightKind({ insight: 'lifecycle' })).toBe('LIFECYCLE');
    expect(insightKind({})).toBe('TRENDS');
    expect(insightKind(null)).toBe('TRENDS');
    expect(insightKind({ insight: 'BOGUS' })).toBe('TRENDS');
  });
  it('reads query insights (InsightVizNode or a bare query node)', () => {
    expect(insightKind({}, { kind: 'InsightVizNode', source: { kind: 'RetentionQuery' } })).toBe('RETENTION');
    expect(insightKind({}, { kind: 'PathsQuery' })).toBe('PATHS');
  });
  it('maps kinds to their compute endpoints', () => {
    expect(computePath('FUNNELS')).toBe('insights/funnel/');
    expect(computePath('RETENTION')).toBe('insights/retention/');
    expect(computePath('PATHS')).toBe('insights/path/');
    expect(computePath('STICKINESS')).toBe('insights/trend/');
    expect(computePath('LIFECYCLE')).toBe('insights/trend/');
    expect(computePath('TRENDS')).toBe('insights/trend/');
  });
  it('offers interval and breakdown only where PostHog has them', () => {
    expect(hasInterval('TRENDS') && hasInterval('LIFECYCLE') && !hasInterval('FUNNELS') && !hasInterval('RETENTION')).toBe(true);
    expect(hasBreakdown('FUNNELS') && !hasBreakdown('LIFECYCLE') && !hasBreakdown('PATHS')).toBe(true);
  });
});

describe('filter edits', () => {
  it('set the date range without touching the input', () => {
    const f = withDateRange({ ...trend, date_to: '2026-01-01' }, '-30d');
    expect(f.date_from).toBe('-30d');
    expect('date_to' in f).toBe(false);
    expect(withDateRange(trend, '2026-01-01', '2026-01-31')).toMatchObject({ date_from: '2026-01-01', date_to: '2026-01-31' });
    expect(trend.date_from).toBe('-7d');
  });
  it('set an event breakdown, or remove it', () => {
    const f = withBreakdown({ ...trend, breakdowns: [{ property: 'x' }] }, ' $browser ');
    expect(f).toMatchObject({ breakdown: '$browser', breakdown_type: 'event' });
    expect('breakdowns' in f).toBe(false);
    const none = withBreakdown(f, '');
    expect('breakdown' in none || 'breakdown_type' in none).toBe(false);
    expect(breakdownOf(f)).toBe('$browser');
    expect(breakdownOf({ breakdown: ['$os'] })).toBe('$os');
    expect(breakdownOf({})).toBe('');
  });
  it('set interval, compare and display', () => {
    expect(withInterval(trend, 'week').interval).toBe('week');
    expect(() => withInterval(trend, 'fortnight')).toThrow();
    expect(withCompare(trend, true).compare).toBe(true);
    expect('compare' in withCompare({ ...trend, compare: true }, false)).toBe(false);
    expect(withDisplay(trend, 'ActionsPie').display).toBe('ActionsPie');
  });
});

describe('saved-insights list', () => {
  it('builds the GET parameters', () => {
    expect(listParams({ search: ' funnel ', favorited: true, page: 2, pageSize: 20 }))
      .toEqual({ saved: 'true', basic: 'true', order: '-last_modified_at', limit: 20, offset: 40, search: 'funnel', favorited: 'true' });
    expect(listParams({ search: '', favorited: false, page: 0, pageSize: 20 })).not.toHaveProperty('search');
  });
  it('counts pages (at least one)', () => {
    expect(pageCount(0, 20)).toBe(1);
    expect(pageCount(20, 20)).toBe(1);
    expect(pageCount(21, 20)).toBe(2);
  });
});

describe('new insight builder', () => {
  const state = { kind: 'FUNNELS' as const, events: ['view_item', ' ', 'purchase'], properties: [{ key: '$browser', value: 'Chrome', operator: '' }],
                  dateFrom: '-30d', interval: 'day', breakdown: '', display: '' };
  it('makes a funnel filter with ordered steps and an exact property filter', () => {
    const f = builderFilters(state);
    expect(f.insight).toBe('FUNNELS');
    expect(f.events).toEqual([{ id: 'view_item', name: 'view_item', type: 'events', order: 0 }, { id: 'purchase', name: 'purchase', type: 'events', order: 1 }]);
    expect(f.properties).toEqual([{ key: '$browser', value: 'Chrome', operator: 'exact', type: 'event' }]);
    expect(f.funnel_window_interval).toBe(14);
  });
  it('makes a trends filter with interval, display and breakdown', () => {
    const f = builderFilters({ ...state, kind: 'TRENDS', events: ['$pageview'], properties: [], breakdown: '$os' });
    expect(f).toMatchObject({ insight: 'TRENDS', interval: 'day', display: 'ActionsLineGraph', breakdown: '$os', breakdown_type: 'event' });
  });
  it('refuses empty series and one-step funnels', () => {
    expect(() => builderFilters({ ...state, events: [' '] })).toThrow('Pick at least one event.');
    expect(() => builderFilters({ ...state, events: ['a'] })).toThrow('A funnel needs at least two steps.');
  });
});

describe('funnel views', () => {
  it('switch the funnel view, giving conversion trends an interval', () => {
    const f = { insight: 'FUNNELS', events: [] };
    expect(withFunnelViz(f, 'time_to_convert')).toEqual({ ...f, funnel_viz_type: 'time_to_convert' });
    expect(withFunnelViz(f, 'trends')).toEqual({ ...f, funnel_viz_type: 'trends', interval: 'day' });
    expect(withFunnelViz({ ...f, interval: 'week' }, 'trends').interval).toBe('week');
    expect(() => withFunnelViz(f, 'pie')).toThrow();
    expect(usesInterval('FUNNELS', withFunnelViz(f, 'trends'))).toBe(true);
    expect(usesInterval('FUNNELS', f)).toBe(false);
    expect(usesInterval('TRENDS', {})).toBe(true);
  });
});
