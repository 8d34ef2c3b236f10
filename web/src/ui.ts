// Thin DOM helpers: elements, the accessible data table, the chart mount.
import * as echarts from 'echarts/core';
import { BarChart, LineChart, PieChart, SankeyChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';
import type { Option } from './charts';
import type { Table } from './transforms';

echarts.use([BarChart, LineChart, PieChart, SankeyChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

type Attrs = Record<string, string | number | boolean | ((e: Event) => void) | null | undefined>;

export function h(tag: string, attrs: Attrs = {}, ...children: (Node | string | null | undefined | false)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function errorBox(message: string): HTMLElement {
  return h('p', { class: 'error', role: 'alert', text: message });
}

const fmt = (v: string | number): string => (typeof v === 'number' ? v.toLocaleString('en-US') : v);

/** "series · column" for the persons panel: the row's leading text cells and the column. */
function cellTitle(row: (string | number)[], column: string): string {
  return [...row.slice(0, 2).filter((x) => typeof x === 'string' && x), column].join(' · ');
}

/** The accessible table of a chart's numbers; a cell with a persons URL holds a button that
 * opens the persons behind it. `data-value` keeps the raw number for tests and copying. */
export function dataTable(t: Table, kind: string, onPersons?: (url: string, title: string) => void,
                          cellStyle?: (r: number, c: number) => string | null): HTMLElement {
  const head = h('tr', {}, ...t.columns.map((c) => h('th', { scope: 'col', text: c })));
  const body = t.rows.map((row, r) =>
    h('tr', {}, ...row.map((v, c) => {
      const url = t.persons?.[r]?.[c] ?? null;
      const content: Node | string = url && onPersons
        ? h('button', { type: 'button', class: 'link', 'aria-label': `Persons: ${row[0]} ${t.columns[c]}`,
                        onclick: () => onPersons(url, cellTitle(row, t.columns[c])) }, fmt(v))
        : fmt(v);
      return h(c === 0 ? 'th' : 'td', { scope: c === 0 ? 'row' : null, 'data-value': String(v), style: cellStyle?.(r, c) ?? null }, content);
    })));
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data-table', 'data-kind': kind }, h('caption', { text: t.caption }), h('thead', {}, head), h('tbody', {}, ...body)));
}

/** Draws an option into a new chart box; a click on a data point with a persons URL calls back. */
export function chart(option: Option, label: string, onPoint?: (url: string, title: string) => void): { el: HTMLElement; dispose: () => void } {
  const el = h('div', { class: 'chart', role: 'img', 'aria-label': label });
  let inst: ReturnType<typeof echarts.init> | null = null;
  let ro: ResizeObserver | null = null;
  let disposed = false;
  // Initialised once the caller has put the box in the document (same task): a detached box has
  // no size, and the Sankey's coordinate system fails on a zero-sized box.
  queueMicrotask(() => {
    if (disposed) return;
    inst = echarts.init(el, undefined, { renderer: 'canvas' });
    inst.setOption(option);
    inst.on('click', (p: { seriesIndex?: number; dataIndex?: number; seriesName?: string; name?: string }) => {
      const url = option.series?.[p.seriesIndex ?? -1]?.meta?.persons?.[p.dataIndex ?? -1];
      if (url && onPoint) onPoint(url, `${p.seriesName ?? ''} · ${p.name ?? ''}`);
    });
    ro = new ResizeObserver(() => inst?.resize());
    ro.observe(el);
  });
  return { el, dispose: () => { disposed = true; ro?.disconnect(); inst?.dispose(); } };
}

export function download(filename: string, text: string, type = 'text/csv'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: filename }) as HTMLAnchorElement;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
