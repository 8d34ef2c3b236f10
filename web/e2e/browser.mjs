// Drives the web page in headless Chromium (Debian's, through playwright-core) and prints what it
// saw as JSON on stdout; tests/http/test_web.py compares that with the API. Screenshots go to
// $PGI_WEB_ARTEFACTS. Inputs (env): PGI_BASE_URL, PGI_PERSONAL_API_KEY, PGI_PROJECT_ID,
// PGI_WEB_INSIGHTS (JSON {label: insight id}), PGI_WEB_ARTEFACTS, CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const base = process.env.PGI_BASE_URL;
const key = process.env.PGI_PERSONAL_API_KEY;
const project = process.env.PGI_PROJECT_ID;
const insights = JSON.parse(process.env.PGI_WEB_INSIGHTS);
const shots = process.env.PGI_WEB_ARTEFACTS;
mkdirSync(shots, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  // playwright gives every launch a fresh --user-data-dir of its own (it refuses one in args).
});
const out = { requests: [], insights: {}, paint_ms: {}, console_errors: [] };

function track(page) {
  page.on('request', (r) => {
    if (r.url().includes('/api/')) out.requests.push({ method: r.method(), url: r.url(), body: r.postData() });
  });
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
  page.on('pageerror', (e) => out.console_errors.push(String(e)));
}

/** The accessible data table of the drawn insight: columns and the raw values of each row. */
async function readTable(page) {
  await page.waitForSelector('.result table.data-table, .result .empty, .error', { timeout: 60000 });
  return page.evaluate(() => {
    const t = document.querySelector('.result table.data-table');
    if (!t) return null;
    return {
      kind: t.getAttribute('data-kind'),
      columns: [...t.querySelectorAll('thead th')].map((th) => th.textContent),
      rows: [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((c) => c.getAttribute('data-value'))),
    };
  });
}

/** Waits for the next compute request of the insight page and its answer. */
async function rerun(page, action) {
  const draws = await page.$eval('.area', (a) => Number(a.dataset.draws ?? 0));
  const resp = page.waitForResponse((r) => /\/insights\/(trend|funnel|retention|path)\/$/.test(new URL(r.url()).pathname) && r.request().method() === 'POST');
  await action();
  const r = await resp;
  await page.waitForFunction((n) => Number(document.querySelector('.area')?.dataset.draws ?? 0) > n
                                     || document.querySelector('.status .error'), draws);
  return { body: JSON.parse(r.request().postData()), status: r.status() };
}

try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  track(page);

  // A wrong key: PostHog's error in words.
  await page.goto(`${base}/`);
  await page.fill('#key', 'phx_thisKeyDoesNotExist0000000000000000000');
  await page.click('button[type=submit]');
  out.wrong_key_message = await (await page.waitForSelector('.error')).textContent();
  await page.screenshot({ path: `${shots}/signin-wrong-key.png` });

  // The right key → projects → saved insights (search, favourites).
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.click(`a[href="#/project/${project}"]`);
  await page.waitForSelector('table.insights');
  out.list_names = await page.$$eval('table.insights tbody tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
  await page.screenshot({ path: `${shots}/insights-list.png`, fullPage: true });
  const listed = async (hashPart) => {
    await page.waitForFunction((part) => (document.getElementById('insights-list')?.dataset.loaded ?? '').includes(part), hashPart);
    return page.$$eval('table.insights tbody tr td:nth-child(2)', (tds) => tds.map((t) => t.textContent));
  };
  await page.fill('#search', 'funnel');
  await page.click('form[role=search] button[type=submit]');
  out.search_names = await listed('search=funnel');
  await page.check('#fav');
  out.favourite_names = await listed('favorited=1');

  // Each insight: a full page load (first paint measured from navigation start), its table, a shot.
  for (const [label, id] of Object.entries(insights)) {
    await page.goto(`${base}/#/project/${project}/insight/${id}`);
    await page.reload();
    out.insights[label] = await readTable(page);
    await page.waitForFunction(() => window.__pgiPaint !== undefined, null, { timeout: 60000 });
    out.paint_ms[label] = await page.evaluate(() => window.__pgiPaint);
    await page.screenshot({ path: `${shots}/insight-${label}.png`, fullPage: true });
  }

  // An insight that does not exist: PostHog's "Not found." in words, not a blank page.
  await page.goto(`${base}/#/project/${project}/insight/999999999`);
  out.missing_insight_message = await (await page.waitForSelector('.error')).textContent();

  // Controls on the trend: a refresh in PostHog's force_cache mode, then date range, breakdown,
  // interval, each re-run through the API.
  await page.goto(`${base}/#/project/${project}/insight/${insights.trend}`);
  await readTable(page);
  await page.selectOption('#refresh-mode', 'force_cache');
  const cacheReq = page.waitForResponse((r) => r.url().includes('refresh=force_cache'));
  await page.click('button:text-is("Refresh")');
  out.refresh_cache = { status: (await cacheReq).status() };
  await page.waitForFunction(() => document.querySelector('.status .hint')?.textContent?.startsWith('Cached result'));
  out.refresh_cache.table = await readTable(page);
  out.date_change = await rerun(page, () => page.selectOption('#date', '-30d'));
  out.date_change.table = await readTable(page);
  out.breakdown_change = await rerun(page, async () => { await page.fill('#breakdown', '$browser'); await page.press('#breakdown', 'Enter'); });
  out.breakdown_change.table = await readTable(page);
  await page.screenshot({ path: `${shots}/trend-after-controls.png`, fullPage: true });
  out.interval_change = await rerun(page, () => page.selectOption('#interval', 'week'));

  // CSV download of the edited trend (POST insights/trend/?format=csv with the page's filter).
  const csvReq = page.waitForRequest((r) => r.url().includes('format=csv'));
  const dl = page.waitForEvent('download');
  await page.click('text=Download CSV');
  out.csv = { body: JSON.parse((await csvReq).postData()), name: (await dl).suggestedFilename() };
  out.csv.text = await new Promise((resolve, reject) => {
    dl.then(async (d) => { const chunks = []; const st = await d.createReadStream(); st.on('data', (c) => chunks.push(c)); st.on('end', () => resolve(Buffer.concat(chunks).toString('utf8'))); st.on('error', reject); });
  });

  // The persons behind the first data point, in the side panel.
  const personsResp = page.waitForResponse((r) => r.url().includes('/persons/trends/'));
  await page.click('.result table.data-table tbody tr:first-child td:not([data-value="0"]) button');
  out.persons_status = (await personsResp).status();
  await page.waitForSelector('aside.persons li, aside.persons .error, aside.persons .empty');
  out.persons_listed = await page.$$eval('aside.persons li', (li) => li.length);
  await page.screenshot({ path: `${shots}/persons-panel.png` });

  // Sharing: switch it on, open the link without a key (a fresh context has no sessionStorage),
  // the embed variant, then switch it off and reload the link.
  await page.goto(`${base}/#/project/${project}/insight/${insights.funnel}`);
  await readTable(page);
  out.viz_change = await rerun(page, () => page.selectOption('#viz', 'time_to_convert'));
  out.viz_change.table = await readTable(page);
  await page.check('#share');
  const link = await (await page.waitForSelector('#share-link')).getAttribute('href');
  out.share_link = link;
  const anon = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  const shared = await anon.newPage();
  track(shared);
  await shared.goto(link);
  out.shared_table = await readTable(shared);
  out.shared_has_header = (await shared.$('header')) !== null;
  await shared.screenshot({ path: `${shots}/shared-phone.png`, fullPage: true });
  await shared.goto(`${link}?embed`);
  await readTable(shared);
  out.embed_has_header = (await shared.$('header')) !== null;
  const off = page.waitForResponse((r) => r.url().includes('/sharing/') && r.request().method() === 'PATCH');
  await page.uncheck('#share');
  out.unshare_status = (await off).status();
  await shared.goto(link);
  out.unshared_message = await (await shared.waitForSelector('.error')).textContent();
  await shared.screenshot({ path: `${shots}/shared-disabled.png` });
  // The builder: a funnel from the project's event names with a property filter; preview, save.
  await page.goto(`${base}/#/project/${project}/new`);
  await page.waitForFunction(() => document.querySelectorAll('#event-names option').length > 0);
  out.builder = { event_options: await page.$$eval('#event-names option', (o) => o.map((x) => x.value)) };
  await page.fill('#name', 'Built in the browser');
  await page.selectOption('#kind', 'FUNNELS');
  await page.fill('#ev0', 'view_item');
  await page.fill('#ev1', 'purchase');
  await page.fill('#pkey', '$browser');
  await page.fill('#pval', 'Chrome');
  const previewResp = page.waitForResponse((r) => r.url().endsWith('/insights/funnel/') && r.request().method() === 'POST');
  await page.click('text=Preview');
  out.builder.preview_body = JSON.parse((await previewResp).request().postData());
  out.builder.preview_table = await readTable(page);
  const saveResp = page.waitForResponse((r) => r.url().endsWith('/insights/') && r.request().method() === 'POST');
  await page.click('button[type=submit]');
  const created = await saveResp;
  out.builder.save_status = created.status();
  out.builder.created_id = (await created.json()).id;
  await page.waitForFunction((id) => location.hash.endsWith(`/insight/${id}`), out.builder.created_id);
  await page.waitForSelector('.area[data-draws]');
  out.builder.saved_table = await readTable(page);
  out.builder.title = await page.textContent('main h1');
  await page.screenshot({ path: `${shots}/builder-saved.png`, fullPage: true });

  out.key_in_urls = out.requests.some((r) => r.url.includes(key));
} catch (e) {
  // Report how far it got: the test shows the step that failed and the page's console errors.
  out.error = String(e && e.stack ? e.stack : e);
  process.exitCode = 1;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
