// Real-client run for tests/http/test_elements_browser.py: serves page.html and posthog-js from
// its own origin, opens it in Debian's chromium (playwright-core, no browser download), clicks
// the nested <span>, and waits until the stack answered the capture request for the click.
// Usage: node click.mjs <api_host> <project token> <distinct_id>
// Prints one JSON line: {"config_status", "capture_status", "capture_path", "content_type",
// "cors_origin", "page_origin", "console_errors", "flags_status" (when the SDK asked for flags)}.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [apiHost, token, distinctId] = process.argv.slice(2);
const here = path.dirname(fileURLToPath(import.meta.url));
const files = {
  '/': ['text/html', path.join(here, 'page.html')],
  '/posthog.js': ['application/javascript',
                  path.join(here, 'node_modules/posthog-js/dist/array.full.no-external.js')],
};
const server = http.createServer((req, res) => {
  const f = files[new URL(req.url, 'http://x').pathname];
  if (!f) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { 'Content-Type': f[0] });
  res.end(fs.readFileSync(f[1]));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const origin = `http://127.0.0.1:${server.address().port}`;

// Launch flags from toolchain.md (root, no sandbox, no background networking); launch() gives
// a fresh temporary profile (the --user-data-dir of toolchain.md) and adds --headless itself.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const out = {};
try {
  const page = await browser.newPage();
  out.console_errors = [];
  page.on('console', (m) => { if (m.type() === 'error') out.console_errors.push(m.text()); });
  page.on('response', (r) => {
    if (/\/(flags|decide)\//.test(r.url())) out.flags_status = r.status();
    if (r.status() >= 400) process.stderr.write(`HTTP ${r.status()} ${r.url()}\n`);
  });
  // Autocapture starts once the remote config (GET /array/<token>/config.js, else the JSON form
  // /config) has been applied.
  const configured = page.waitForResponse((r) => /\/array\/[^/]+\/config(\.js)?$/.test(new URL(r.url()).pathname),
                                          { timeout: 30000 });
  const q = new URLSearchParams({ token, api_host: apiHost, distinct_id: distinctId });
  await page.goto(`${origin}/?${q}`);
  await page.waitForFunction(() => window.__phLoaded === true);
  out.config_status = (await configured).status();
  await page.waitForFunction(() => window.posthog.autocapture && window.posthog.autocapture.isEnabled);
  const captured = page.waitForResponse(
    (r) => /\/(e|i\/v0\/e|batch|capture)\//.test(new URL(r.url()).pathname + '/')
           && r.request().method() === 'POST'
           && (r.request().postDataBuffer() || Buffer.alloc(0)).length > 0,
    { timeout: 30000 });
  await page.click('span.label');
  const resp = await captured;
  out.capture_status = resp.status();
  out.capture_path = new URL(resp.url()).pathname;
  out.content_type = resp.request().headers()['content-type'] || null;
  out.cors_origin = (await resp.allHeaders())['access-control-allow-origin'] || null;
  out.page_origin = origin;
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(out));
