// Browser tests of Treaty's web UI: starts `treaty demo --serve` (which
// sends the demo's traffic first and prints the UI's URL and tokens),
// drives Debian's chromium through every page as a person would, and
// checks that what must be refused is refused. No console error may
// appear on any page.
//
// TREATY_BIN: the binary (default target/debug/treaty, or
// $CARGO_TARGET_DIR/debug/treaty). SCREENSHOTS=DIR: also write one PNG
// per page there (scripts/ui-screenshots).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const IDLE_SECONDS = 20;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const bin =
  process.env.TREATY_BIN ||
  path.join(process.env.CARGO_TARGET_DIR || path.join(root, 'target'), 'debug', 'treaty');
const shots = process.env.SCREENSHOTS ? path.resolve(process.env.SCREENSHOTS) : null;
if (shots) mkdirSync(shots, { recursive: true });

let failures = 0;
function check(ok, what) {
  if (ok) {
    console.log(`ok - ${what}`);
  } else {
    failures += 1;
    console.log(`not ok - ${what}`);
  }
}

/** Starts the demo; resolves with its URL and tokens once it serves. */
function startDemo() {
  const dir = mkdtempSync(path.join(tmpdir(), 'treaty-ui-test-'));
  const child = spawn(
    bin,
    ['demo', '--serve', '--port', '0', '--dir', dir, '--ui-session-idle', `${IDLE_SECONDS}s`],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TREATY_ADMIN_TOKEN: '', TREATY_AUDITOR_TOKEN: '' } },
  );
  return new Promise((resolve, reject) => {
    const found = {};
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the demo did not start in 180 s:\n${out}`)), 180_000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      for (const line of out.split('\n')) {
        const m = line.match(/^(TREATY_[A-Z_]+)=(.*)$/);
        if (m) found[m[1]] = m[2].trim();
      }
      if (found.TREATY_GATEWAY_URL && found.TREATY_UI_URL) {
        clearTimeout(timer);
        resolve({ child, ui: found.TREATY_UI_URL, admin: found.TREATY_ADMIN_TOKEN, auditor: found.TREATY_AUDITOR_TOKEN });
      }
    });
    child.on('exit', (code) => reject(new Error(`the demo exited (${code}):\n${out}`)));
  });
}

const demo = await startDemo();
const ui = demo.ui;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
const consoleErrors = [];
function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${who} ${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${who} ${page.url()}: ${e.message}`));
  page.on('dialog', (d) => d.accept());
}
async function shot(page, name) {
  if (shots) await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}
async function signIn(context, token, who) {
  const page = await context.newPage();
  watch(page, who);
  await page.goto(`${ui}/login`);
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${ui}`), page.click('button[type=submit]')]);
  return page;
}
const text = async (page, sel) => ((await page.textContent(sel)) || '').trim();

try {
  // Without a session, every page sends the browser to the login form.
  const anon = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const ap = await anon.newPage();
  watch(ap, 'anonymous');
  await ap.goto(`${ui}/ledger`);
  check(ap.url() === `${ui}/login`, 'an unauthenticated page request is sent to the login form');
  const anonChange = await anon.request.post(`${ui}/keys`, {
    form: { tenant: 'acme', channel: 'direct', product: 'api' },
    maxRedirects: 0,
  });
  check(anonChange.status() === 303, `an unauthenticated change is refused (${anonChange.status()})`);
  await shot(ap, 'login');

  // A second admin session, left unused to expire while the rest runs.
  const idleContext = await browser.newContext();
  const idlePage = await signIn(idleContext, demo.admin, 'idle');
  const idleSince = Date.now();
  await idlePage.goto('about:blank');

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await signIn(context, demo.admin, 'admin');

  // Overview, filled from the demo's traffic, refreshed in place.
  const requests = Number(await text(page, '[data-metric=requests]'));
  check(requests > 0, `the overview counts the demo's requests (${requests})`);
  check((await page.locator('svg.chart').count()) >= 3, 'the overview draws its charts');
  check((await page.locator('[data-breaker]').count()) > 0, 'the overview lists circuit breakers');
  await page.waitForSelector('#live[data-refreshed]', { timeout: 15_000 });
  check(true, 'the overview refreshed without reloading the page');
  await page.selectOption('#range', '24h');
  await page.waitForURL(/range=24h/);
  check(Number(await text(page, '[data-metric=requests]')) >= requests, 'the time-range picker reloads the overview');
  await shot(page, 'overview');

  // Ledger: list, filter, open a record.
  await page.goto(`${ui}/ledger`);
  const rows = await page.locator('#ledger-table tbody tr').count();
  check(rows > 0, `the ledger lists requests (${rows})`);
  await shot(page, 'ledger');
  await page.selectOption('select[name=tenant]', 'eurobank');
  await Promise.all([page.waitForURL(/tenant=eurobank/), page.click('form.filters button[type=submit]')]);
  const tenants = await page.locator('#ledger-table tbody tr td:nth-child(4)').allTextContents();
  check(tenants.length > 0 && tenants.every((t) => t.startsWith('eurobank')), `the tenant filter keeps eurobank only (${tenants.length})`);
  await page.goto(`${ui}/ledger?status=refused`);
  const statuses = await page.locator('#ledger-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
  check(statuses.length > 0 && statuses.every((s) => s === 'refused'), `the status filter keeps refusals only (${statuses.length})`);
  await page.goto(`${ui}/ledger?tenant=acme&status=served&class=stateless_api`);
  await page.click('#ledger-table tbody tr:first-child a');
  await page.waitForSelector('#hosts');
  check((await page.locator('#hosts tbody tr').count()) > 0, "a record shows every host's verdict");
  check((await page.locator('#attempts tbody tr').count()) > 0, 'a record shows its attempts');
  check((await page.locator('#chain tbody tr').count()) >= 2, 'a record shows its place in the chain');
  await shot(page, 'record');

  // Explain it, then switch the reading.
  await page.click('#explain');
  await page.waitForSelector('#verdicts');
  check((await page.locator('#verdicts .clause').count()) > 0, 'the explorer names the clauses with their text');
  const readings = await page.locator('#reading option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
  const other = readings.find((r) => !r.endsWith('openai')) || readings[0];
  await page.selectOption('#reading', other);
  await page.waitForSelector('#redecided');
  check((await text(page, '#summary')).includes(other), `the explorer decides the request again under ${other}`);
  await shot(page, 'explain');

  await page.goto(`${ui}/contracts`);
  check((await page.locator('table.clauses').count()) === readings.length, "the contracts page lists each reading's clauses");
  await shot(page, 'contracts');

  // What-if between two readings.
  await page.goto(`${ui}/whatif`);
  await page.selectOption('select[name=to]', other);
  await page.selectOption('#range', 'all');
  await Promise.all([page.waitForURL(/to=/), page.click('#whatif-form button[type=submit]')]);
  await page.waitForSelector('#whatif-result');
  check(Number(await text(page, '#wi-requests')) > 0, 'the what-if replays the recorded requests');
  check((await page.locator('svg.flows path').count()) > 0, 'the what-if draws the flows');
  await shot(page, 'whatif');

  // A run's timeline.
  await page.goto(`${ui}/runs`);
  const runLink = page.locator('#runs a[href*="/runs/run_"]').first();
  check((await runLink.count()) === 1, "the runs page lists the demo agent's run");
  await runLink.click();
  await page.waitForSelector('#timeline');
  check((await page.locator('#timeline li').count()) > 1, "a run's timeline shows its steps");
  check((await page.locator('#timeline').textContent()).includes('ran on'), 'the timeline says where model steps ran');
  await shot(page, 'run');

  // Keys: create (secret shown once), revoke.
  await page.goto(`${ui}/keys`);
  await page.selectOption('#create-key select[name=tenant]', 'acme');
  await page.fill('#create-key input[name=name]', 'browser-test');
  await page.click('#create-key button[type=submit]');
  await page.waitForSelector('#secret');
  const secret = await text(page, '#secret');
  check(secret.startsWith('tk-'), 'creating a key shows its secret once');
  await shot(page, 'keys');
  const keyId = await text(page, '#new-secret code');
  await page.goto(`${ui}/keys`);
  check(!(await page.content()).includes(secret), 'the secret is not shown again');
  await page.click(`tr[data-key="${keyId}"] button.danger`);
  await page.waitForURL(`${ui}/keys`);
  check((await text(page, `tr[data-key="${keyId}"] td:nth-child(7)`)) === 'revoked', 'revoking a key marks it revoked');

  // Verify the chain with a progress indicator.
  await page.goto(`${ui}/ledger`);
  await page.click('#verify');
  await page.waitForSelector('#job[data-finished]', { timeout: 60_000 });
  check((await page.getAttribute('#job', 'data-finished')) === 'ok', `verify runs from the UI: ${await text(page, '[data-status]')}`);
  await shot(page, 'verify');

  // A change without the CSRF token is refused.
  const noCsrf = await context.request.post(`${ui}/keys`, {
    form: { tenant: 'acme', channel: 'direct', product: 'api' },
    maxRedirects: 0,
  });
  check(noCsrf.status() === 403, `a change without the CSRF token is refused (${noCsrf.status()})`);

  // The auditor browses and verifies, and cannot change anything.
  const auditContext = await browser.newContext();
  const audit = await signIn(auditContext, demo.auditor, 'auditor');
  await audit.goto(`${ui}/keys`);
  check((await audit.locator('#create-key').count()) === 0, 'the auditor sees no create form');
  const auditCsrf = await audit.getAttribute('input[name=csrf]', 'value');
  const auditChange = await auditContext.request.post(`${ui}/keys`, {
    form: { tenant: 'acme', channel: 'direct', product: 'api', csrf: auditCsrf },
    maxRedirects: 0,
  });
  check(auditChange.status() === 403, `a change by the auditor is refused (${auditChange.status()})`);
  await audit.goto(`${ui}/ledger`);
  await audit.click('#verify');
  await audit.waitForSelector('#job[data-finished]', { timeout: 60_000 });
  check((await audit.getAttribute('#job', 'data-finished')) === 'ok', 'the auditor may verify');

  // Log out.
  await page.goto(`${ui}`);
  await Promise.all([page.waitForURL(`${ui}/login`), page.click('header .who button')]);
  await page.goto(`${ui}/keys`);
  check(page.url() === `${ui}/login`, 'after logging out the pages ask to sign in again');

  // The session left unused has expired.
  const wait = IDLE_SECONDS * 1000 + 1500 - (Date.now() - idleSince);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  await idlePage.goto(`${ui}`);
  check(idlePage.url() === `${ui}/login?expired=1`, `an expired session is sent to the login form (${idlePage.url()})`);
  check((await idlePage.content()).includes('Your session expired'), 'the login form says the session expired');

  check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? `:\n  ${consoleErrors.join('\n  ')}` : ''}`);
} catch (e) {
  failures += 1;
  console.log(`not ok - ${e.stack || e}`);
} finally {
  await browser.close();
  demo.child.kill('SIGTERM');
}
console.log(failures === 0 ? 'browser tests: all passed' : `browser tests: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
