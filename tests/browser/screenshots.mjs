// Every view of the dashboard at 1280 and 375 px, in a realistic session that
// tests/dashboard.rs (`every_view_reads_well_at_both_widths_in_a_realistic_session`) sets up:
// four endpoints of acme (healthy, flaky, down, retired by its receiver) and one of globex.
//   BASE_URL, ADMIN_TOKEN, WORKSPACE_TOKEN (a token of acme)
//   SCREENSHOTS_DIR   optional: write the README's screenshots there (UPDATE_SCREENSHOTS=1)
//   CHROMIUM          optional: the browser (default /usr/bin/chromium)
// Each view must fit its width and say the endpoints' health in words; any page or console
// error fails the run. Prints one `ok N - step` line per step, exits 0 or 1.

import { chromium } from 'playwright-core';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/dashboard.rs sets it)`);
  return value;
};
const BASE = env('BASE_URL');
const ADMIN_TOKEN = env('ADMIN_TOKEN');
const WORKSPACE_TOKEN = env('WORKSPACE_TOKEN');
const SCREENSHOTS = process.env.SCREENSHOTS_DIR || null;
const WAIT_MS = 15000;

const problems = [];
let steps = 0;

function watch(page, name) {
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`${name}: console error: ${message.text()}`);
  });
  page.setDefaultTimeout(WAIT_MS);
}

async function step(name, action) {
  await action();
  if (problems.length) throw new Error(problems.join('\n'));
  steps += 1;
  console.log(`ok ${steps} - ${name}`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function fitsWidth(page, what) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  check(scroll <= width, `${what}: the page is ${scroll} px wide in a ${width} px window`);
}

async function shot(page, name) {
  // A phone's shot is one screen, as a person sees it; a desktop's the whole page.
  const fullPage = page.viewportSize().width >= 600;
  if (SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, name), fullPage, animations: 'disabled' });
}

async function signIn(page, token) {
  await page.goto(`${BASE}/`);
  await page.fill('#token', token);
  await page.click('#sign-in button[type=submit]');
  await page.locator('#endpoints').waitFor();
}

/** The endpoints table has loaded every row's health. */
async function endpointsLoaded(page) {
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#endpoints li[data-endpoint-id]')];
    return rows.length > 0 && rows.every((row) => row.querySelector('.spark svg') || row.querySelector('.badge-disabled'));
  });
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
let failed = false;
try {
  for (const [width, height, who] of [[1280, 900, 'admin'], [375, 812, 'workspace']]) {
    const context = await browser.newContext(width < 600
      ? { viewport: { width, height }, isMobile: true, hasTouch: true }
      : { viewport: { width, height } });
    const page = await context.newPage();
    watch(page, `${width} px`);
    const prefix = width < 600 ? 'dashboard-mobile-' : 'dashboard-';

    await step(`${width} px, ${who}: the endpoints table says each endpoint's health in words`, async () => {
      await signIn(page, who === 'admin' ? ADMIN_TOKEN : WORKSPACE_TOKEN);
      await endpointsLoaded(page);
      const row = (text) => page.locator('#endpoints li', { hasText: text });
      await row('Payroll sync').locator('.badge', { hasText: 'Healthy' }).waitFor();
      await row('Data warehouse loader').locator('.badge', { hasText: 'Failing since' }).waitFor();
      await row('Slack notifications').locator('.badge', { hasText: 'Some failures' }).waitFor();
      await row('Old billing').locator('.badge', { hasText: 'Disabled' }).waitFor();
      await row('Old billing').locator('.why', { hasText: '410' }).waitFor();
      check((await row('Payroll sync').locator('.flow').textContent()).includes('≤ 50/s'), 'the rate limit is shown');
      await fitsWidth(page, 'the endpoints table');
      await shot(page, `${prefix}endpoints.png`);
    });

    await step(`${width} px: an endpoint with a delivery open, and the request it sent`, async () => {
      await page.locator('#endpoints li', { hasText: 'Slack notifications' }).locator('h2 a').click();
      await page.locator('#chart svg').waitFor();
      // A phone's shot is the top of the page: the endpoint's heading, health and settings.
      if (width < 600) await shot(page, `${prefix}endpoint.png`);
      const failedRow = page.locator('details.delivery[data-status="failed"]').first();
      await failedRow.locator('summary').click();
      await failedRow.locator('.attempt').first().waitFor();
      await failedRow.locator('.attempt button.show-request').first().click();
      await failedRow.locator('.request .headers-table').waitFor();
      await fitsWidth(page, 'the endpoint page');
      if (width >= 600) await shot(page, `${prefix}endpoint.png`);
    });

    await step(`${width} px: everything that failed in the last hour, across endpoints`, async () => {
      await page.click('a[data-nav="deliveries"]');
      await page.locator('details.delivery').first().waitFor();
      await page.selectOption('#filter-status', 'failed');
      await page.selectOption('#filter-period', '1');
      await page.locator('#deliveries-what', { hasText: 'Failed deliveries' }).waitFor();
      await page.locator('details.delivery[data-status="failed"]').first().waitFor();
      const down = page.locator('details.delivery', { hasText: 'clockeye/events' }).first();
      await down.locator('summary').click();
      await down.locator('.attempt .excerpt').first().waitFor();
      await fitsWidth(page, 'the deliveries view');
      await shot(page, `${prefix}deliveries.png`);
    });

    await step(`${width} px: events with their outcome`, async () => {
      await page.click('a[data-nav="events"]');
      await page.locator('#events li .badge').first().waitFor();
      await fitsWidth(page, 'the events view');
      if (width >= 600) await shot(page, `${prefix}events.png`);
    });

    await step(`${width} px: the add form with extra headers, rate limit and ordering`, async () => {
      await page.click('a[data-nav="endpoints"]');
      await page.click('#add-endpoint');
      await page.locator('#endpoint-form').waitFor();
      await page.fill('#url', 'https://hooks.acme-hr.example/clockeye');
      await page.fill('#description', 'Project tracker');
      await page.check('#event-project\\.created');
      await page.check('#event-time_entry\\.created');
      await page.click('#add-header');
      await page.fill('#header-rows .header-name', 'X-Api-Key');
      await page.fill('#header-rows .header-value', 'pk_live_example');
      await page.fill('#rate_limit', '20');
      await fitsWidth(page, 'the add form');
      if (width >= 600) await shot(page, `${prefix}add-endpoint.png`);
    });
    await context.close();
  }
} catch (error) {
  failed = true;
  console.log(`not ok ${steps + 1} - ${error.message}`);
  for (const problem of problems) console.log(`# ${problem}`);
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log(`screenshots: ${steps} passed, 0 failed`);
