// First paint of insights: for each saved insight, a full page load with the key already in the
// tab, timed from navigation start to the frame after the chart and table are drawn
// (window.__pgiPaint, set by the page). Prints {label: [ms per run]} as JSON.
//   PGI_BASE_URL=… PGI_PERSONAL_API_KEY=… PGI_PROJECT_ID=… PGI_WEB_INSIGHTS='{"funnel": 2}' [RUNS=3] node e2e/paint.mjs
import { chromium } from 'playwright-core';

const { PGI_BASE_URL: base, PGI_PERSONAL_API_KEY: key, PGI_PROJECT_ID: project } = process.env;
const insights = JSON.parse(process.env.PGI_WEB_INSIGHTS);
const runs = Number(process.env.RUNS || 3);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const out = {};
try {
  const page = await browser.newPage();
  await page.goto(`${base}/`);
  await page.evaluate((k) => sessionStorage.setItem('pgi_personal_api_key', k), key);
  for (const [label, id] of Object.entries(insights)) {
    out[label] = [];
    for (let i = 0; i < runs; i++) {
      await page.goto(`${base}/#/project/${project}/insight/${id}`);
      await page.reload();
      await page.waitForFunction(() => window.__pgiPaint !== undefined, null, { timeout: 60000 });
      out[label].push(Math.round(await page.evaluate(() => window.__pgiPaint)));
    }
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
