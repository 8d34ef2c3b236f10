// The page: sign in, projects, saved insights, one insight with its controls, the builder, and
// the read-only shared page. Rendering only; the logic lives in api/query/transforms/charts.
import './style.css';
import { Api, ApiError, projectPath } from './api';
import { DISPLAYS } from './charts';
import {
  BuilderState,
  DATE_PRESETS,
  FUNNEL_VIZ,
  Filters,
  INTERVALS,
  Kind,
  breakdownOf,
  builderFilters,
  computePath,
  hasBreakdown,
  insightKind,
  listParams,
  pageCount,
  usesInterval,
  withBreakdown,
  withCompare,
  withDateRange,
  withDisplay,
  withFunnelViz,
  withInterval,
} from './query';
import { Route, insightHash, listHash, parseRoute, sharedUrl } from './routes';
import { personsFromAnswer } from './transforms';
import { download, errorBox, h } from './ui';
import { drawResult } from './view';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Json = any;

const KEY = 'pgi_personal_api_key'; // sessionStorage only: gone with the tab, never in a URL
const app = document.getElementById('app') as HTMLElement;
let cleanup: (() => void)[] = [];

function api(): Api {
  return new Api(sessionStorage.getItem(KEY));
}

function message(e: unknown): string {
  return e instanceof ApiError || e instanceof Error ? e.message : String(e);
}

function show(...nodes: (Node | null)[]): void {
  cleanup.forEach((c) => c());
  cleanup = [];
  app.replaceChildren(...nodes.filter((n): n is Node => n !== null));
}

function chrome(title: string, projectId?: number, ...main: Node[]): HTMLElement[] {
  const nav = h('nav', { 'aria-label': 'Main' },
    h('a', { href: '#/projects' }, 'Projects'),
    projectId ? h('a', { href: listHash(projectId, '', false, 0) }, 'Saved insights') : null,
    projectId ? h('a', { href: `#/project/${projectId}/new` }, 'New insight') : null,
    h('button', { type: 'button', class: 'link', onclick: () => { sessionStorage.removeItem(KEY); location.hash = ''; route(); } }, 'Sign out'));
  document.title = `${title} · pg_insights`;
  return [h('header', {}, h('span', { class: 'brand', text: 'pg_insights' }), nav), h('main', {}, h('h1', { text: title }), ...main)];
}

// ---------------------------------------------------------------- sign in, projects

function signIn(): void {
  const input = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, placeholder: 'phx_…' }) as HTMLInputElement;
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', onsubmit: async (e: Event) => {
    e.preventDefault();
    status.replaceChildren(h('p', { text: 'Checking the key…' }));
    try {
      await new Api(input.value.trim()).get('/api/projects/');
      sessionStorage.setItem(KEY, input.value.trim());
      location.hash = '#/projects';
      route();
    } catch (err) {
      status.replaceChildren(errorBox(message(err)));
    }
  } },
  h('label', { for: 'key', text: 'Personal API key' }), input,
  h('button', { type: 'submit', text: 'Sign in' }), status,
  h('p', { class: 'hint', text: 'The key stays in this tab (sessionStorage) and is sent only in the Authorization header.' }));
  document.title = 'Sign in · pg_insights';
  show(h('main', { class: 'narrow' }, h('h1', { text: 'pg_insights' }), form));
  input.focus();
}

async function projects(): Promise<void> {
  show(...chrome('Projects', undefined, h('p', { text: 'Loading…' })));
  try {
    const res = await api().get<Json>('/api/projects/');
    const list = h('ul', { class: 'projects' }, ...res.results.map((p: Json) =>
      h('li', {}, h('a', { href: listHash(p.id, '', false, 0) }, `${p.name} (#${p.id})`))));
    show(...chrome('Projects', undefined, res.results.length ? list : h('p', { text: 'This key opens no project.' })));
  } catch (err) {
    show(...chrome('Projects', undefined, errorBox(message(err))));
  }
}

// ---------------------------------------------------------------- saved insights

async function list(r: Extract<Route, { page: 'list' }>): Promise<void> {
  const pageSize = 20;
  const search = h('input', { id: 'search', type: 'search', value: r.search }) as HTMLInputElement;
  const fav = h('input', { id: 'fav', type: 'checkbox', checked: r.favorited }) as HTMLInputElement;
  const form = h('form', { class: 'toolbar', role: 'search', onsubmit: (e: Event) => {
    e.preventDefault();
    location.hash = listHash(r.projectId, search.value.trim(), fav.checked, 0);
  } },
  h('label', { for: 'search', text: 'Search' }), search,
  h('label', { for: 'fav' }, fav, ' Favourites only'),
  h('button', { type: 'submit', text: 'Apply' }));
  fav.addEventListener('change', () => (form as HTMLFormElement).requestSubmit());
  const body = h('div', {}, h('p', { text: 'Loading…' }));
  show(...chrome('Saved insights', r.projectId, form, body));
  try {
    const res = await api().get<Json>(projectPath(r.projectId, 'insights/'),
      listParams({ search: r.search, favorited: r.favorited, page: r.pageNo, pageSize }));
    const rows = res.results.map((i: Json) => {
      const star = h('button', { type: 'button', class: 'star', 'aria-pressed': String(!!i.favorited),
                                 'aria-label': `Favourite ${i.name || i.derived_name || i.short_id}`, text: i.favorited ? '★' : '☆' });
      star.addEventListener('click', async () => {
        try {
          const upd = await api().patch<Json>(projectPath(r.projectId, `insights/${i.id}/`), { favorited: !i.favorited });
          i.favorited = upd.favorited;
          star.textContent = i.favorited ? '★' : '☆';
          star.setAttribute('aria-pressed', String(!!i.favorited));
        } catch (err) {
          body.prepend(errorBox(message(err)));
        }
      });
      return h('tr', {}, h('td', {}, star),
        h('td', {}, h('a', { href: insightHash(r.projectId, i.id) }, i.name || i.derived_name || `Insight ${i.short_id}`)),
        h('td', { text: insightKind(i.filters, i.query).toLowerCase() }),
        h('td', { text: (i.last_modified_at ?? '').slice(0, 10) }));
    });
    const pages = pageCount(res.count, pageSize);
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('a', { href: listHash(r.projectId, r.search, r.favorited, r.pageNo - 1), 'aria-disabled': r.pageNo <= 0 ? 'true' : null,
               class: r.pageNo <= 0 ? 'disabled' : null }, '← Previous'),
      h('span', { text: `Page ${r.pageNo + 1} of ${pages} (${res.count} insights)` }),
      h('a', { href: listHash(r.projectId, r.search, r.favorited, r.pageNo + 1), 'aria-disabled': r.pageNo + 1 >= pages ? 'true' : null,
               class: r.pageNo + 1 >= pages ? 'disabled' : null }, 'Next →'));
    body.replaceChildren(rows.length
      ? h('table', { class: 'insights' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: '★' }), h('th', { scope: 'col', text: 'Name' }),
          h('th', { scope: 'col', text: 'Kind' }), h('th', { scope: 'col', text: 'Modified' }))), h('tbody', {}, ...rows))
      : h('p', { text: 'No saved insights match.' }), pager);
    body.id = 'insights-list';
    body.dataset.loaded = location.hash; // which list is shown (tests wait for it)
  } catch (err) {
    body.replaceChildren(errorBox(message(err)));
  }
}

// ---------------------------------------------------------------- one insight

function personsPanel(): { el: HTMLElement; open: (url: string, title: string) => void } {
  const el = h('aside', { class: 'persons', 'aria-label': 'Persons', hidden: true });
  const open = async (url: string, title: string) => {
    el.hidden = false;
    const close = h('button', { type: 'button', class: 'close', onclick: () => { el.hidden = true; } }, 'Close');
    el.replaceChildren(h('h2', { text: 'Persons' }), h('p', { class: 'hint', text: title }), close, h('p', { text: 'Loading…' }));
    try {
      const people = personsFromAnswer(await api().get<Json>(url));
      el.replaceChildren(h('h2', { text: `Persons (${people.length}${people.length >= 100 ? '+' : ''})` }), h('p', { class: 'hint', text: title }), close,
        people.length ? h('ul', {}, ...people.map((p) => h('li', { text: p.label }))) : h('p', { class: 'empty', text: 'No persons.' }));
    } catch (err) {
      el.replaceChildren(h('h2', { text: 'Persons' }), close, errorBox(message(err)));
    }
    close.focus();
  };
  return { el, open };
}

function select(id: string, label: string, options: { value: string; label: string }[], value: string, onChange: (v: string) => void): HTMLElement {
  const opts = options.some((o) => o.value === value) ? options : [{ value, label: value }, ...options];
  const sel = h('select', { id, onchange: (e: Event) => onChange((e.target as HTMLSelectElement).value) },
    ...opts.map((o) => h('option', { value: o.value, selected: o.value === value, text: o.label })));
  return h('span', { class: 'control' }, h('label', { for: id, text: label }), sel);
}

const REFRESH_MODES = [
  { value: 'force_blocking', label: 'Recalculate' },
  { value: 'blocking', label: 'Cache if fresh' },
  { value: 'force_cache', label: 'Cache only' },
];

const BREAKDOWNS = ['$browser', '$geoip_country_code', '$current_url', '$os', '$device_type', 'plan'];

async function insightPage(r: Extract<Route, { page: 'insight' }>): Promise<void> {
  const status = h('div', { class: 'status', 'aria-live': 'polite' });
  const panel = personsPanel();
  const area = h('div', { class: 'area' });
  const controls = h('div', { class: 'toolbar controls' });
  const shareBox = h('div', { class: 'share' });
  show(...chrome('Insight', r.projectId, controls, status, h('div', { class: 'with-panel' }, area, panel.el), shareBox));
  let insight: Json;
  try {
    insight = await api().get<Json>(projectPath(r.projectId, `insights/${r.insightId}/`), { refresh: 'blocking' });
  } catch (err) {
    status.replaceChildren(errorBox(message(err)));
    return;
  }
  const title = insight.name || insight.derived_name || `Insight ${insight.short_id}`;
  (app.querySelector('main h1') as HTMLElement).textContent = title;
  // As PostHog's frontend: opening an insight counts as a view (my_last_viewed, last_viewed_at).
  api().post(projectPath(r.projectId, `insights/${insight.id}/viewed/`), {}).catch(() => undefined);
  document.title = `${title} · pg_insights`;
  const kind = insightKind(insight.filters, insight.query);
  const saved: Filters = insight.filters ?? {};
  let filters: Filters = saved;
  let drawn: { dispose: () => void } | null = null;

  const draw = (result: unknown) => {
    drawn?.dispose();
    const d = drawResult(kind, filters, result, panel.open);
    drawn = d;
    area.replaceChildren(d.el);
    area.dataset.draws = String(Number(area.dataset.draws ?? 0) + 1); // tests wait for a new drawing
    requestAnimationFrame(() => {
      (window as any).__pgiPaint = (window as any).__pgiPaint ?? performance.now();
      performance.mark('pgi-insight-painted');
    });
  };
  cleanup.push(() => drawn?.dispose());
  let refreshMode = 'force_blocking';
  const rerun = async (next: Filters, refresh?: string) => {
    filters = next;
    renderControls();
    status.replaceChildren(h('p', { text: 'Calculating…' }));
    try {
      const res = refresh && filters === saved
        ? await api().get<Json>(projectPath(r.projectId, `insights/${r.insightId}/`), { refresh })
        : await api().post<Json>(projectPath(r.projectId, computePath(kind)), filters);
      status.replaceChildren(h('p', { class: 'hint', text: freshness(res) }));
      draw(res.result);
    } catch (err) {
      status.replaceChildren(errorBox(message(err)));
    }
  };
  const editable = insight.query == null; // query insights are drawn as saved
  const renderControls = () => {
    controls.replaceChildren();
    if (!editable) return;
    controls.append(select('date', 'Date range', DATE_PRESETS, String(filters.date_from ?? '-7d'), (v) => rerun(withDateRange(filters, v))));
    if (kind === 'FUNNELS') {
      controls.append(select('viz', 'Funnel view', FUNNEL_VIZ, String(filters.funnel_viz_type ?? 'steps'), (v) => rerun(withFunnelViz(filters, v))));
    }
    if (usesInterval(kind, filters)) {
      controls.append(select('interval', 'Interval', INTERVALS.map((i) => ({ value: i, label: i })), String(filters.interval ?? 'day'),
        (v) => rerun(withInterval(filters, v))));
    }
    if (kind === 'TRENDS') {
      controls.append(select('display', 'Chart', DISPLAYS, String(filters.display ?? 'ActionsLineGraph'), (v) => rerun(withDisplay(filters, v))));
      const cmp = h('input', { id: 'compare', type: 'checkbox', checked: !!filters.compare,
                               onchange: (e: Event) => rerun(withCompare(filters, (e.target as HTMLInputElement).checked)) });
      controls.append(h('span', { class: 'control' }, h('label', { for: 'compare' }, cmp, ' Compare to previous')));
    }
    if (hasBreakdown(kind)) {
      const input = h('input', { id: 'breakdown', list: 'breakdowns', value: breakdownOf(filters), placeholder: 'none' }) as HTMLInputElement;
      controls.append(h('form', { class: 'control', onsubmit: (e: Event) => { e.preventDefault(); rerun(withBreakdown(filters, input.value)); } },
        h('label', { for: 'breakdown', text: 'Breakdown' }), input,
        h('datalist', { id: 'breakdowns' }, ...BREAKDOWNS.map((b) => h('option', { value: b }))),
        h('button', { type: 'submit', text: 'Apply' })));
    }
    // PostHog's refresh modes apply to the saved insight (its cache); an edited query is always
    // calculated by the compute endpoint.
    if (filters === saved) {
      controls.append(select('refresh-mode', 'Refresh mode', REFRESH_MODES, refreshMode, (v) => { refreshMode = v; }));
    }
    controls.append(h('button', { type: 'button', onclick: () => rerun(filters, refreshMode) }, 'Refresh'));
    if (kind === 'TRENDS') {
      controls.append(h('button', { type: 'button', onclick: async () => {
        try {
          download(`${title}.csv`, await api().postText(projectPath(r.projectId, 'insights/trend/'), filters, { format: 'csv' }));
        } catch (err) {
          status.replaceChildren(errorBox(message(err)));
        }
      } }, 'Download CSV'));
    }
  };
  renderControls();
  status.replaceChildren(h('p', { class: 'hint', text: freshness(insight) }));
  draw(insight.result);
  if (insight.description) controls.before(h('p', { class: 'description', text: insight.description }));
  sharing(r, shareBox);
}

/** When the result was calculated and whether it came from the cache (PostHog's is_cached). */
function freshness(res: Json): string {
  if (!res.last_refresh) return '';
  const when = new Date(res.last_refresh).toLocaleString();
  return res.is_cached ? `Cached result, calculated ${when}` : `Calculated ${when}`;
}

/** The sharing switch: PATCH insights/:id/sharing/ {enabled}; shows the public link. */
async function sharing(r: Extract<Route, { page: 'insight' }>, box: HTMLElement): Promise<void> {
  const path = projectPath(r.projectId, `insights/${r.insightId}/sharing/`);
  const render = (s: Json) => {
    const toggle = h('input', { id: 'share', type: 'checkbox', checked: !!s.enabled, onchange: async (e: Event) => {
      try {
        render(await api().patch<Json>(path, { enabled: (e.target as HTMLInputElement).checked }));
      } catch (err) {
        box.append(errorBox(message(err)));
      }
    } });
    const url = sharedUrl(location.origin, s.access_token);
    box.replaceChildren(h('label', { for: 'share' }, toggle, ' Share with anyone who has the link'),
      s.enabled ? h('p', {}, h('a', { href: url, id: 'share-link' }, url), ' · ',
                     h('a', { href: sharedUrl(location.origin, s.access_token, true) }, 'embed')) : '');
  };
  try {
    render(await api().get<Json>(path));
  } catch (err) {
    box.replaceChildren(errorBox(message(err)));
  }
}

// ---------------------------------------------------------------- new insight

async function builder(r: Extract<Route, { page: 'new' }>): Promise<void> {
  const state: BuilderState = { kind: 'TRENDS', events: ['$pageview'], properties: [{ key: '', value: '', operator: 'exact' }],
                                dateFrom: '-7d', interval: 'day', breakdown: '', display: 'ActionsLineGraph' };
  const names = h('datalist', { id: 'event-names' });
  const status = h('div', { 'aria-live': 'polite' });
  const preview = h('div', { class: 'area' });
  const form = h('form', { class: 'card builder' });
  let drawn: { dispose: () => void } | null = null;
  cleanup.push(() => drawn?.dispose());
  const nameInput = h('input', { id: 'name', required: true, value: '' }) as HTMLInputElement;
  const render = () => {
    const steps = state.events.map((ev, i) => h('li', {},
      h('label', { for: `ev${i}`, text: state.kind === 'FUNNELS' ? `Step ${i + 1}` : `Series ${i + 1}` }),
      h('input', { id: `ev${i}`, list: 'event-names', value: ev, oninput: (e: Event) => { state.events[i] = (e.target as HTMLInputElement).value; } }),
      state.events.length > 1 ? h('button', { type: 'button', class: 'link', onclick: () => { state.events.splice(i, 1); render(); } }, 'Remove') : ''));
    const p = state.properties[0];
    form.replaceChildren(
      h('label', { for: 'name', text: 'Name' }), nameInput,
      select('kind', 'Kind', [{ value: 'TRENDS', label: 'Trends' }, { value: 'FUNNELS', label: 'Funnel' }], state.kind, (v) => {
        state.kind = v as BuilderState['kind'];
        if (state.kind === 'FUNNELS' && state.events.length < 2) state.events.push('');
        render();
      }),
      h('ol', { class: 'steps' }, ...steps), names,
      h('button', { type: 'button', onclick: () => { state.events.push(''); render(); } }, state.kind === 'FUNNELS' ? 'Add step' : 'Add series'),
      h('fieldset', {}, h('legend', { text: 'Filter (event property equals)' }),
        h('label', { for: 'pkey', text: 'Property' }), h('input', { id: 'pkey', value: p.key, oninput: (e: Event) => { p.key = (e.target as HTMLInputElement).value; } }),
        h('label', { for: 'pval', text: 'Value' }), h('input', { id: 'pval', value: p.value, oninput: (e: Event) => { p.value = (e.target as HTMLInputElement).value; } })),
      select('bdate', 'Date range', DATE_PRESETS, state.dateFrom, (v) => { state.dateFrom = v; }),
      h('label', { for: 'bbreak', text: 'Breakdown (event property)' }),
      h('input', { id: 'bbreak', list: 'breakdowns', value: state.breakdown, oninput: (e: Event) => { state.breakdown = (e.target as HTMLInputElement).value; } }),
      h('datalist', { id: 'breakdowns' }, ...BREAKDOWNS.map((b) => h('option', { value: b }))),
      h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => run(false) }, 'Preview'), h('button', { type: 'submit' }, 'Save')));
  };
  const run = async (save: boolean) => {
    let filters: Filters;
    try {
      filters = builderFilters(state);
    } catch (err) {
      status.replaceChildren(errorBox(message(err)));
      return;
    }
    status.replaceChildren(h('p', { text: save ? 'Saving…' : 'Calculating…' }));
    try {
      if (save) {
        const created = await api().post<Json>(projectPath(r.projectId, 'insights/'), { name: nameInput.value.trim(), filters, saved: true });
        location.hash = insightHash(r.projectId, created.id);
        return;
      }
      const res = await api().post<Json>(projectPath(r.projectId, computePath(state.kind as Kind)), filters);
      drawn?.dispose();
      drawn = drawResult(state.kind, filters, res.result, undefined);
      preview.replaceChildren((drawn as { el: HTMLElement; dispose: () => void }).el);
      status.replaceChildren();
    } catch (err) {
      status.replaceChildren(errorBox(message(err)));
    }
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); run(true); });
  render();
  show(...chrome('New insight', r.projectId, form, status, preview));
  try {
    const defs = await api().get<Json>(projectPath(r.projectId, 'event_definitions/'));
    names.replaceChildren(...defs.results.map((d: Json) => h('option', { value: d.name })));
  } catch (err) {
    status.replaceChildren(errorBox(message(err)));
  }
}

// ---------------------------------------------------------------- shared (no key)

async function shared(r: Extract<Route, { page: 'shared' }>): Promise<void> {
  const main = h('main', { class: r.embed ? 'embed' : '' });
  show(r.embed ? null : h('header', {}, h('span', { class: 'brand', text: 'pg_insights' }), h('span', { class: 'hint', text: 'Shared insight (read-only)' })), main);
  try {
    const res = await new Api(null).get<Json>(`/shared/${encodeURIComponent(r.token)}.json`);
    const i = res.insight;
    const title = i.name || i.derived_name || `Insight ${i.short_id}`;
    document.title = `${title} · pg_insights`;
    const d = drawResult(insightKind(i.filters, i.query), i.filters ?? {}, i.result, undefined);
    cleanup.push(d.dispose);
    main.replaceChildren(h(r.embed ? 'h2' : 'h1', { text: title }), i.description && !r.embed ? h('p', { text: i.description }) : '', d.el);
    requestAnimationFrame(() => { (window as any).__pgiPaint = performance.now(); });
  } catch (err) {
    main.replaceChildren(errorBox(err instanceof ApiError && err.status === 404 ? 'This link is not shared (or no longer).' : message(err)));
  }
}

// ---------------------------------------------------------------- router

function route(): void {
  const r = parseRoute(location.pathname, location.search, location.hash, !!sessionStorage.getItem(KEY));
  switch (r.page) {
    case 'signin': return signIn();
    case 'projects': void projects(); return;
    case 'list': void list(r); return;
    case 'insight': void insightPage(r); return;
    case 'new': void builder(r); return;
    case 'shared': void shared(r); return;
  }
}

window.addEventListener('hashchange', route);
route();
