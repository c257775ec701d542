// Drives the dashboard in Debian's headless Chromium against the real service, as a person would.
// tests/dashboard.rs starts the service and a receiver and runs this with:
//   BASE_URL          the service, e.g. http://127.0.0.1:41234
//   ADMIN_TOKEN       its admin token
//   RECEIVER_URL      a receiver on loopback that answers 200
//   WORKSPACE_ID      a workspace, WORKSPACE_TOKEN a token of it and WORKSPACE_TOKEN_ID its id
//   OTHER_ENDPOINT_ID an endpoint of another workspace (the workspace token must not see it),
//                     and OTHER_ENDPOINT_URL its URL
//   CHROMIUM          optional: the browser (default /usr/bin/chromium)
// Any page error or console error fails the run, except the browser's own line for an API call
// answered 4xx, which the steps below provoke on purpose and check is shown in words.
// Prints one `ok N - step` line per step and exits 0, or prints `not ok` and exits 1.

import { chromium } from 'playwright-core';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/dashboard.rs sets it)`);
  return value;
};
const BASE = env('BASE_URL');
const ADMIN_TOKEN = env('ADMIN_TOKEN');
const RECEIVER_URL = env('RECEIVER_URL');
const WORKSPACE_ID = env('WORKSPACE_ID');
const WORKSPACE_TOKEN = env('WORKSPACE_TOKEN');
const WORKSPACE_TOKEN_ID = env('WORKSPACE_TOKEN_ID');
const OTHER_ENDPOINT_ID = env('OTHER_ENDPOINT_ID');
const OTHER_ENDPOINT_URL = env('OTHER_ENDPOINT_URL');
/** Longest any one wait may take; deliveries to loopback take milliseconds. */
const WAIT_MS = 15000;
const XSS = '<img src=x onerror="window.__xss=1">Payroll <b>sync</b>';
/** An extra header's value: a credential, which must never be shown once saved. */
const BASIC = 'Basic cGF5cm9sbDpzM2NyZXQ=';

const problems = [];
/** A console error a step provokes on purpose (a pattern), or null. */
let tolerated = null;
let steps = 0;
let current = null;

function watch(page, name) {
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const url = message.location().url || '';
    const expected = /^Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())
      && new URL(url, BASE).pathname.startsWith('/v1/');
    if (!expected && !(tolerated && tolerated.test(message.text()))) problems.push(`${name}: console error: ${message.text()} (${url})`);
  });
  page.setDefaultTimeout(WAIT_MS);
}

async function step(name, action) {
  const started = Date.now();
  await action();
  if (problems.length) throw new Error(problems.join('\n'));
  steps += 1;
  console.log(`ok ${steps} - ${name} (${Date.now() - started} ms)`);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** The page fits its width: nothing scrolls sideways. */
async function fitsWidth(page, what) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  check(scroll <= width, `${what}: the page is ${scroll} px wide in a ${width} px window`);
}

async function apiCall(method, path, token, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: Object.assign({ Authorization: `Bearer ${token}` }, body ? { 'Content-Type': 'application/json' } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
let failed = false;
try {
  // ---- Desktop, admin -------------------------------------------------------------------------
  const desktop = await browser.newContext({ viewport: { width: 1280, height: 900 }, permissions: ['clipboard-read', 'clipboard-write'] });
  const page = await desktop.newPage();
  current = page;
  watch(page, 'desktop');
  let endpointId = null;
  let secret = null;

  await step('a wrong token is refused in words next to the token field', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#sign-in').waitFor();
    await page.fill('#token', 'not-the-token-0000000000');
    await page.click('#sign-in button[type=submit]');
    await page.locator('#error-token', { hasText: 'not valid' }).waitFor();
  });

  await step('the admin signs in and sees the endpoints list', async () => {
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#sign-in button[type=submit]');
    await page.locator('#who-text', { hasText: 'Admin' }).waitFor();
    await page.locator('#endpoints').waitFor();
    check(await page.evaluate(() => sessionStorage.length) === 1, 'the token is kept in sessionStorage');
  });

  await step('the add form has one checkbox per event type with its description', async () => {
    await page.click('#add-endpoint');
    await page.locator('#endpoint-form').waitFor();
    const catalog = (await apiCall('GET', '/v1/event-types', ADMIN_TOKEN)).body.data;
    for (const type of catalog) {
      const label = page.locator(`label[for="event-${type.type}"]`);
      check(await label.locator('input[type=checkbox]').count() === 1, `a checkbox for ${type.type}`);
      check((await label.textContent()).includes(type.description), `the description of ${type.type}`);
    }
    check(await page.locator('#event-all').count() === 1, 'an "all event types" checkbox');
  });

  await step('form errors are shown next to their fields', async () => {
    await page.fill('#url', 'ftp://example.com/hook');
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#error-events', { hasText: 'at least one' }).waitFor();
    await page.check('#event-time_entry\\.created');
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#error-url').filter({ hasText: /\S/ }).waitFor();
    check(await page.getAttribute('#url', 'aria-invalid') === 'true', 'the URL field is marked invalid');
    check(await page.locator('#error-events').textContent() === '', 'the events error is gone');
  });

  await step('the admin adds an endpoint with two event types and sees its secret once', async () => {
    await page.fill('#url', `${RECEIVER_URL}/webhooks/clockeye`);
    await page.fill('#description', XSS);
    await page.check('#event-user\\.invited');
    await page.fill('#workspace_id', WORKSPACE_ID);
    // An extra header: a value without a name is refused in words first.
    await page.click('#add-header');
    await page.fill('#header-rows .header-value', BASIC);
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#error-headers', { hasText: 'needs a name' }).waitFor();
    await page.fill('#header-rows .header-name', 'Authorization');
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#new-secret').waitFor();
    secret = await page.textContent('#new-secret');
    check(/^whsec_[A-Za-z0-9+/=]{40,}$/.test(secret), `a whsec_ secret, got ${secret}`);
    endpointId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    const stored = (await apiCall('GET', `/v1/endpoints/${endpointId}`, ADMIN_TOKEN)).body;
    check(JSON.stringify(stored.events) === '["time_entry.created","user.invited"]', `events ${JSON.stringify(stored.events)}`);
    check(stored.workspace_id === WORKSPACE_ID, `workspace ${stored.workspace_id}`);
    check(JSON.stringify(Object.keys(stored.headers)) === '["Authorization"]', `headers ${JSON.stringify(stored.headers)}`);
    check(!(await page.textContent('main')).includes(BASIC), 'the header value is not shown');
  });

  await step('a description with markup is shown as text, not run', async () => {
    check(await page.textContent('#endpoint-description') === XSS, 'the description, character for character');
    check(await page.locator('#endpoint-description img, #endpoint-description b').count() === 0, 'no element made from it');
    check(await page.evaluate(() => window.__xss) === undefined, 'its onerror did not run');
  });

  await step('a test event is sent and its delivery succeeds, with its attempt', async () => {
    await page.selectOption('#test-type', 'user.invited');
    await page.click('#send-test');
    await page.locator('#test-result', { hasText: 'sent' }).waitFor();
    const delivery = page.locator('details.delivery[data-status="succeeded"]').first();
    await delivery.waitFor();
    await delivery.locator('summary').click();
    await delivery.locator('.attempt', { hasText: 'HTTP 200' }).waitFor();
    check(await delivery.locator('.badge-test').count() === 1, 'the delivery is marked as a test');
    await page.locator('#chart svg rect.bar-succeeded').first().waitFor();
    await page.locator('#chart-summary', { hasText: '1 succeeded' }).waitFor();
  });

  await step('a failed delivery shows each attempt with its response, and can be retried', async () => {
    // The receiver answers 500 to bodies that contain `fail-me`, 200 to the rest.
    for (const description of ['Design review', 'fail-me', 'Standup']) {
      const sent = await apiCall('POST', '/v1/events', ADMIN_TOKEN, {
        type: 'time_entry.created',
        workspace_id: WORKSPACE_ID,
        data: { id: `te_${description.length}`, user_id: 'usr_1', project_id: 'prj_1', start_time: '2024-01-15T09:00:00Z', duration: 1800, description },
      });
      check(sent.status === 202, `sending an event: ${sent.status}`);
    }
    await page.click('#deliveries-section button:text("Refresh")');
    await page.locator('details.delivery[data-status="failed"]').first().waitFor();
    const failedId = await page.locator('details.delivery[data-status="failed"]').first().getAttribute('data-delivery-id');
    const failed = page.locator(`details.delivery[data-delivery-id="${failedId}"]`);
    await page.locator('details.delivery[data-status="succeeded"]').nth(2).waitFor();
    await failed.locator('summary').click();
    await failed.locator('.attempt', { hasText: 'HTTP 500' }).first().waitFor();
    check(await failed.locator('.attempt').count() === 2, 'both scheduled attempts are listed');
    check(await failed.locator('.excerpt').first().textContent() === '<h1>database is down</h1>', 'the response excerpt, as text');
    // The request as sent: the headers the receiver got (secrets never), the body bytes.
    await failed.locator('.attempt').first().locator('button.show-request').click();
    const request = failed.locator('.attempt').first().locator('.request');
    await request.waitFor();
    const headers = Object.fromEntries(await request.locator('.headers-table tr').evaluateAll((rows) => rows.map((row) => [row.cells[0].textContent, row.cells[1].textContent])));
    check(headers['X-ClockEye-Attempt'] === '1', `X-ClockEye-Attempt: ${headers['X-ClockEye-Attempt']}`);
    check(/^sha256=[0-9a-f]{64}$/.test(headers['X-ClockEye-Signature']), `X-ClockEye-Signature: ${headers['X-ClockEye-Signature']}`);
    check(/^v1,/.test(headers['webhook-signature']), `webhook-signature: ${headers['webhook-signature']}`);
    check(headers['X-ClockEye-Delivery'] === failedId, 'the delivery id');
    check(headers.Authorization === '[masked]', `the extra header is masked: ${headers.Authorization}`);
    const started = new Date(await failed.locator('.attempt').first().locator('time').getAttribute('datetime')).getTime();
    check(headers['webhook-timestamp'] === String(Math.floor(started / 1000)), 'the timestamp is the attempt\'s start second');
    const sentBody = await request.locator('.body-sent').textContent();
    check(sentBody.startsWith('{"id":"') && sentBody.includes('"description":"fail-me"'), `the body as sent: ${sentBody}`);
    check(headers['Content-Length'] === String(Buffer.byteLength(sentBody)), 'its length in bytes');
    check(!(await request.textContent()).includes('whsec_') && !(await page.textContent('main')).includes(BASIC), 'no secret in the request shown');
    // Times are relative, with the absolute time and its zone on hover.
    const title = await failed.locator('.attempt time').first().getAttribute('title');
    check(/ago|just now/.test(await failed.locator('.attempt time').first().textContent()), 'a relative time');
    check(/[A-Z]{2,}|GMT|[+-]\d/.test(title), `the hover text has a zone: ${title}`);
    // Shown only failed ones: while it goes out again the list's filter no longer holds it,
    // and the row still follows it to its end.
    await page.selectOption('#delivery-status', 'failed');
    await page.locator('details.delivery[data-status="succeeded"]').first().waitFor({ state: 'detached' });
    await failed.locator('summary').click();
    await failed.locator('.attempt', { hasText: 'HTTP 500' }).first().waitFor();
    await failed.locator('button.retry').click();
    await failed.locator('.note', { hasText: /Queued|Retried/ }).waitFor();
    await failed.locator('.attempt', { hasText: 'Attempt 3' }).waitFor();
    await page.locator(`details.delivery[data-delivery-id="${failedId}"][data-status="failed"]`).waitFor();
    await failed.locator('.note', { hasText: 'failed again' }).waitFor();
    await page.selectOption('#delivery-status', '');
    await page.locator('details.delivery[data-status="succeeded"]').nth(2).waitFor();
    await page.locator('#chart svg rect.bar-failed').first().waitFor();
    await page.locator('#chart-summary', { hasText: '1 failed' }).waitFor();
    await fitsWidth(page, 'the endpoint page on a desktop');
  });

  await step('the secret is revealed on request and rotated', async () => {
    await page.click('#reveal-secret');
    await page.locator('#secret').waitFor();
    check(await page.textContent('#secret') === secret, 'the revealed secret is the one shown at creation');
    await page.click('#secret-shown button:text("Copy")');
    await page.locator('#secret-shown [role=status]', { hasText: 'Copied' }).waitFor();
    check(await page.evaluate(() => navigator.clipboard.readText()) === secret, 'the clipboard holds the secret');
    // With the default overlap both secrets sign for a while, and both are shown.
    await page.click('#rotate-secret');
    await page.locator('#rotated-secret').waitFor();
    const overlapping = await page.textContent('#rotated-secret');
    check(overlapping.startsWith('whsec_') && overlapping !== secret, 'a new secret');
    check(await page.locator('#secret').count() === 0, 'the old one is no longer shown');
    await page.click('#reveal-secret');
    await page.locator('#previous-secret').waitFor();
    check(await page.textContent('#secret') === overlapping, 'the new secret signs');
    check(await page.textContent('#previous-secret') === secret, 'and the previous one still does');
    // The heading says until when the old one signs, without a reload.
    check(await page.locator('#previous-secret-until time').isVisible(), 'the heading shows until when the old secret signs');
    // A receiver that still checks the old secret refuses the first attempt: the next goes at
    // once with the other secret, and the attempt says so in words.
    const refused = await apiCall('POST', '/v1/events', ADMIN_TOKEN, {
      type: 'time_entry.created', workspace_id: WORKSPACE_ID,
      data: { id: 'te_rot', user_id: 'usr_1', project_id: 'prj_1', start_time: '2024-01-15T09:00:00Z', duration: 60, description: 'rotate-me' },
    });
    check(refused.status === 202, `sending an event: ${refused.status}`);
    const switched = refused.body.deliveries[0].id;
    await page.click('#deliveries-section button:text("Refresh")');
    const row = page.locator(`details.delivery[data-delivery-id="${switched}"][data-status="succeeded"]`);
    await row.waitFor();
    await row.locator('summary').click();
    await row.locator('.attempt', { hasText: 'HTTP 401' }).locator('.explain', { hasText: 'went at once signed with the other one' }).waitFor();
    await row.locator('.attempt', { hasText: 'HTTP 200' }).waitFor();
    // A leaked secret: rotating without overlap asks first, as it cannot be undone.
    await page.selectOption('#overlap', '0s');
    await page.click('#rotate-secret');
    await page.locator('#confirm[open]', { hasText: 'cannot be undone' }).waitFor();
    await page.click('#confirm-cancel');
    check(await page.textContent('#rotated-secret') === overlapping, 'cancel rotates nothing');
    await page.click('#rotate-secret');
    await page.click('#confirm-ok');
    await page.waitForFunction((old) => document.querySelector('#rotated-secret')?.textContent !== old, overlapping);
    const rotated = await page.textContent('#rotated-secret');
    check(rotated.startsWith('whsec_') && rotated !== overlapping, 'another new secret');
    check(await page.locator('#secret').count() === 0, 'the old one is no longer shown');
    await page.click('#reveal-secret');
    await page.locator('#secret').waitFor();
    check(await page.textContent('#secret') === rotated, 'revealing now shows the new secret');
    check(await page.locator('#previous-secret').count() === 0, 'no overlap after a 0s rotation');
    check(await page.locator('#previous-secret-until').isHidden(), 'the heading no longer names an old secret');
  });

  await step('recover failed deliveries answers in words', async () => {
    await page.click('#recover');
    await page.locator('#recover-result', { hasText: '1 failed delivery goes out again' }).waitFor();
    await page.click('#recover');
    await page.locator('#recover-result', { hasText: /No failed deliveries|goes out again/ }).waitFor();
    await page.fill('#recover-until', '2020-01-01T00:00');
    await page.click('#recover');
    await page.locator('#error-until', { hasText: /until/ }).waitFor();
  });

  await step('the admin disables the endpoint, and a test event is then refused in words', async () => {
    await page.click('#toggle-enabled');
    await page.locator('#endpoint-status', { hasText: 'Disabled' }).waitFor();
    await page.locator('#disabled-reason', { hasText: 'Disabled' }).waitFor();
    check(await page.textContent('#toggle-enabled') === 'Enable', 'the button now enables');
    await page.click('#send-test');
    await page.locator('#test-error', { hasText: 'disabled' }).waitFor();
  });

  await step('the endpoints list shows health and the description as text', async () => {
    await page.click('a[data-nav="endpoints"]');
    const card = page.locator(`li[data-endpoint-id="${endpointId}"]`);
    await card.waitFor();
    await card.locator('.success-rate', { hasText: '% of ' }).waitFor();
    check(await card.locator('.description').textContent() === XSS, 'the description as text');
    await card.locator('.badge-disabled', { hasText: 'Disabled' }).waitFor();
    await card.locator('.why', { hasText: 'disabled through the API' }).waitFor();
    await card.locator('.spark svg rect.bar-succeeded').first().waitFor();
    check((await card.locator('.flow').textContent()).startsWith('window '), 'the adaptive window is shown');
    await fitsWidth(page, 'the endpoints table on a desktop');
  });

  await step('the admin narrows the list to one workspace', async () => {
    await page.fill('#filter-workspace', 'globex');
    await page.click('#workspace-filter button[type=submit]');
    await page.locator(`li[data-endpoint-id="${endpointId}"]`).waitFor({ state: 'detached' });
    await page.locator(`li[data-endpoint-id="${OTHER_ENDPOINT_ID}"]`).waitFor();
    await page.fill('#filter-workspace', 'nobody');
    await page.click('#workspace-filter button[type=submit]');
    await page.locator('main .note', { hasText: 'No endpoints in workspace nobody' }).waitFor();
    await page.fill('#filter-workspace', '');
    await page.click('#workspace-filter button[type=submit]');
    await page.locator(`li[data-endpoint-id="${endpointId}"]`).waitFor();
  });

  await step('the endpoint is edited with its settings filled in', async () => {
    await page.click(`li[data-endpoint-id="${endpointId}"] h2 a`);
    await page.click('#edit-endpoint');
    await page.locator('#endpoint-form').waitFor();
    check(await page.isChecked('#event-time_entry\\.created') && await page.isChecked('#event-user\\.invited'), 'its two types are checked');
    check(!(await page.isChecked('#event-project\\.created')), 'other types are not');
    check(await page.inputValue('#description') === XSS, 'its description is in the field');
    check(await page.inputValue('#header-rows .header-name') === 'Authorization', 'the extra header is listed by name');
    check(await page.inputValue('#header-rows .header-value') === '', 'its value is not shown');
    await page.fill('#description', 'Payroll sync');
    await page.fill('#rate_limit', '25');
    await page.check('#ordering');
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#endpoint-description', { hasText: 'Payroll sync' }).waitFor();
    await page.locator('.flash', { hasText: 'Saved' }).waitFor();
    const stored = (await apiCall('GET', `/v1/endpoints/${endpointId}`, ADMIN_TOKEN)).body;
    check(JSON.stringify(Object.keys(stored.headers)) === '["Authorization"]', 'an edit that leaves the headers alone keeps them');
    check(stored.rate_limit === 25 && stored.ordering === 'subject', `rate limit and ordering saved: ${stored.rate_limit} ${stored.ordering}`);
    await page.locator('#endpoint-rate-limit', { hasText: '25 per second' }).waitFor();
    // Changing one header needs the others' values again: they are never shown.
    await page.click('#edit-endpoint');
    await page.click('#add-header');
    await page.fill('#header-rows .header-row:nth-child(2) .header-name', 'X-Team');
    await page.fill('#header-rows .header-row:nth-child(2) .header-value', 'payroll');
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('#error-headers', { hasText: 'Enter the value of Authorization again' }).waitFor();
    await page.fill('#header-rows .header-row:nth-child(1) .header-value', BASIC);
    await page.click('#endpoint-form button[type=submit]');
    await page.locator('.flash', { hasText: 'Saved' }).waitFor();
    const headers = (await apiCall('GET', `/v1/endpoints/${endpointId}`, ADMIN_TOKEN)).body.headers;
    check(JSON.stringify(Object.keys(headers).sort()) === '["Authorization","X-Team"]', `both headers: ${JSON.stringify(headers)}`);
  });

  await step('deliveries across endpoints: filters by status, endpoint, type and time, and search by id', async () => {
    await page.click('a[data-nav="deliveries"]');
    await page.locator('#deliveries-filter').waitFor();
    await page.locator('details.delivery').first().waitFor();
    await page.selectOption('#filter-status', 'failed');
    await page.locator('#deliveries-what', { hasText: 'Failed deliveries' }).waitFor();
    await page.locator('details.delivery[data-status="failed"]').first().waitFor();
    check(await page.locator('details.delivery:not([data-status="failed"])').count() === 0, 'only failed ones');
    const failedId = await page.locator('details.delivery').first().getAttribute('data-delivery-id');
    // Another endpoint has none of them.
    await page.selectOption('#filter-endpoint', OTHER_ENDPOINT_ID);
    await page.locator('main .note', { hasText: 'No deliveries' }).waitFor();
    await page.selectOption('#filter-endpoint', endpointId);
    await page.locator(`details.delivery[data-delivery-id="${failedId}"]`).waitFor();
    await page.selectOption('#filter-type', 'user.invited');
    await page.locator('main .note', { hasText: 'No deliveries' }).waitFor();
    await page.selectOption('#filter-type', 'time_entry.created');
    await page.selectOption('#filter-period', '1');
    await page.locator(`details.delivery[data-delivery-id="${failedId}"]`).waitFor();
    await page.fill('#filter-workspace-deliveries', 'globex');
    await page.click('#deliveries-filter button[type=submit]');
    await page.locator('#deliveries-what', { hasText: 'in workspace globex' }).waitFor();
    await page.locator('main .note', { hasText: 'No deliveries' }).waitFor();
    await page.fill('#filter-workspace-deliveries', WORKSPACE_ID);
    await page.click('#deliveries-filter button[type=submit]');
    await page.locator(`details.delivery[data-delivery-id="${failedId}"]`).waitFor();
    await fitsWidth(page, 'the deliveries view on a desktop');
    // By id: a delivery opens with its attempts; an event's id lists its deliveries.
    await page.fill('#delivery-search', failedId);
    await page.click('#deliveries-filter button[type=submit]');
    await page.locator(`details.delivery[data-delivery-id="${failedId}"][open] .attempt`).first().waitFor();
    const eventId = (await apiCall('GET', `/v1/deliveries/${failedId}`, ADMIN_TOKEN)).body.event_id;
    await page.fill('#delivery-search', eventId);
    await page.selectOption('#filter-status', '');
    await page.locator('#deliveries-what', { hasText: `of event ${eventId}` }).waitFor();
    await page.locator(`details.delivery[data-delivery-id="${failedId}"]`).waitFor();
    await page.fill('#delivery-search', 'dlv_nothing');
    await page.click('#deliveries-filter button[type=submit]');
    await page.locator('#error-search', { hasText: 'No delivery dlv_nothing' }).waitFor();
  });

  await step('an event shows its deliveries', async () => {
    await page.click('a[data-nav="events"]');
    await page.locator('#events li').first().waitFor();
    // Each event with its outcome, and a search by id.
    await page.locator('#events li .badge-succeeded', { hasText: '1 succeeded' }).first().waitFor();
    await page.locator('#events li .badge-failed, #events li .badge-pending').first().waitFor();
    const someId = await page.locator('#events li').nth(1).getAttribute('data-event-id');
    await page.fill('#event-search', someId);
    await page.click('#events-filter button[type=submit]');
    await page.waitForFunction((id) => [...document.querySelectorAll('#events li')].map((li) => li.dataset.eventId).join() === id, someId);
    await page.fill('#event-search', 'evt_nothing');
    await page.click('#events-filter button[type=submit]');
    await page.locator('main .note', { hasText: 'No event evt_nothing' }).waitFor();
    await page.fill('#event-search', '');
    await page.fill('#event-workspace', 'globex');
    await page.click('#events-filter button[type=submit]');
    await page.locator('main .note', { hasText: 'No events' }).waitFor();
    await page.fill('#event-workspace', '');
    await page.click('#events-filter button[type=submit]');
    await page.locator('#events li', { hasText: 'user.invited' }).first().locator('a').click();
    await page.locator('#event .badge-test').waitFor();
    await page.locator('details.delivery[data-status="succeeded"]').first().waitFor();
  });

  await step('deleting asks for confirmation first', async () => {
    const made = await apiCall('POST', '/v1/endpoints', ADMIN_TOKEN, { url: `${RECEIVER_URL}/to-delete`, events: ['*'] });
    check(made.status === 201, `creating an endpoint to delete: ${made.status}`);
    await page.goto(`${BASE}/#/endpoints/${made.body.id}`);
    await page.click('#delete-endpoint');
    await page.locator('#confirm[open]').waitFor();
    await page.click('#confirm-cancel');
    await page.locator('#confirm[open]').waitFor({ state: 'detached' });
    check((await apiCall('GET', `/v1/endpoints/${made.body.id}`, ADMIN_TOKEN)).status === 200, 'cancel keeps it');
    await page.click('#delete-endpoint');
    await page.click('#confirm-ok');
    await page.locator('#endpoints').waitFor();
    check((await apiCall('GET', `/v1/endpoints/${made.body.id}`, ADMIN_TOKEN)).status === 404, 'confirm deletes it');
  });

  await step('a refresh shows every delivery made meanwhile, more than a page of them', async () => {
    const made = await apiCall('POST', '/v1/endpoints', ADMIN_TOKEN, { url: `${RECEIVER_URL}/many`, events: ['*'], workspace_id: 'globex' });
    check(made.status === 201, `creating an endpoint: ${made.status}`);
    const test = async () => check((await apiCall('POST', `/v1/endpoints/${made.body.id}/test`, ADMIN_TOKEN, {})).status === 202, 'a test event');
    await test();
    await page.goto(`${BASE}/#/endpoints/${made.body.id}`);
    await page.locator('details.delivery[data-status="succeeded"]').waitFor();
    await Promise.all(Array.from({ length: 30 }, test));
    await page.click('#deliveries-section button:text("Refresh")');
    await page.waitForFunction(() => document.querySelectorAll('details.delivery').length >= 31);
    const listed = (await apiCall('GET', `/v1/deliveries?endpoint_id=${made.body.id}&limit=100`, ADMIN_TOKEN)).body.data.map((d) => d.id);
    const shown = await page.locator('details.delivery').evaluateAll((nodes) => nodes.map((n) => n.dataset.deliveryId));
    check(JSON.stringify(shown) === JSON.stringify(listed), `all 31, newest first: ${shown.length} shown`);
    check(await page.locator('#deliveries-section button:text("Show older")').isHidden(), 'nothing older to show');
    check((await apiCall('DELETE', `/v1/endpoints/${made.body.id}`, ADMIN_TOKEN)).status === 204, 'deleting it');
  });

  await step('an event type filter without events says none match', async () => {
    await page.click('a[data-nav="events"]');
    await page.locator('#events li').first().waitFor();
    await page.selectOption('#event-type-filter', 'timesheet.approved');
    await page.locator('main .note', { hasText: 'No events match.' }).waitFor();
  });

  let portalLink = null;
  await step('the admin makes a portal link for a workspace, which works once', async () => {
    await page.click('a[data-nav="portal"]');
    await page.fill('#portal-workspace', WORKSPACE_ID);
    await page.selectOption('#portal-expires', '1h');
    await page.click('#portal-form button[type=submit]');
    await page.locator('#portal-link').waitFor();
    portalLink = await page.textContent('#portal-link');
    // The API answers the absolute URL itself (from the request's Host, or --public-url).
    const made = await apiCall('POST', `/v1/workspaces/${WORKSPACE_ID}/portal-links`, ADMIN_TOKEN, {});
    check(made.body.url.startsWith(`${BASE}/#code=cew_pl_`), `an absolute URL: ${made.body.url}`);
    check(new RegExp(`^${BASE}/#code=cew_pl_[A-Za-z0-9_-]+$`).test(portalLink), `a link with a code in its fragment: ${portalLink}`);
    check(!portalLink.includes('cew_ws_'), 'no token in the link');
    await page.locator('#portal-expiry', { hasText: 'works once' }).locator('time').waitFor();
    const expires = new Date(await page.getAttribute('#portal-expiry time', 'datetime')).getTime();
    check(Math.abs(expires - Date.now() - 3600000) < 120000, 'it expires in an hour');
    await page.click('#portal-result button:text("Copy")');
    await page.locator('#portal-result [role=status]', { hasText: 'Copied' }).waitFor();
    check(await page.evaluate(() => navigator.clipboard.readText()) === portalLink, 'the clipboard holds the link');
    // The workspace's tokens, with when each expires.
    await page.locator(`#tokens li[data-token-id="${WORKSPACE_TOKEN_ID}"]`, { hasText: 'does not expire' }).waitFor();
  });

  // ---- Phone width, a workspace's portal link ---------------------------------------------------
  const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, isMobile: true, hasTouch: true });
  const mobile = await phone.newPage();
  current = mobile;
  watch(mobile, 'phone');

  await step('a portal link signs in as the workspace and leaves no code in the URL', async () => {
    await mobile.goto(portalLink);
    await mobile.locator('#who-text', { hasText: `Workspace ${WORKSPACE_ID}` }).waitFor();
    check(!mobile.url().includes('code'), `the URL still carries the code: ${mobile.url()}`);
    check(await mobile.evaluate(() => location.hash === '#/' && !history.state), `the address is #/: ${mobile.url()}`);
    const stored = await mobile.evaluate(() => Object.values(sessionStorage));
    check(stored.length === 1 && stored[0].startsWith('cew_ws_'), 'only a session token is kept');
    check(await mobile.locator('a[data-nav="portal"]').isHidden(), 'no portal links for a workspace');
    // The session is a token of the workspace, listed with its expiry, 12 hours on.
    const listed = (await apiCall('GET', `/v1/workspaces/${WORKSPACE_ID}/tokens`, ADMIN_TOKEN)).body.data;
    const session = listed.find((token) => token.description === 'portal session');
    check(session && Math.abs(new Date(session.expires_at).getTime() - Date.now() - 12 * 3600000) < 120000, `a 12-hour portal session: ${JSON.stringify(listed)}`);
    // The admin sees it, and when it expires.
    await page.click('#list-tokens');
    await page.locator(`#tokens li[data-token-id="${session.id}"] .token-expires time`).waitFor();
  });
  await desktop.close();

  await step('the same link opened again signs in no one, and says why', async () => {
    const again = await browser.newContext({ viewport: { width: 375, height: 812 } });
    const tab = await again.newPage();
    current = tab;
    watch(tab, 'again');
    await tab.goto(portalLink);
    await tab.locator('#sign-in [data-error-for="_form"]', { hasText: 'This link was used already or has expired; ask for a new one.' }).waitFor();
    check(!tab.url().includes('code'), `the URL still carries the code: ${tab.url()}`);
    check(await tab.evaluate(() => sessionStorage.length) === 0, 'nothing is kept');
    check(await tab.locator('#nav').isHidden(), 'not signed in');
    await again.close();
    current = mobile;
  });

  await step('a workspace token sees only its own workspace', async () => {
    const card = mobile.locator(`li[data-endpoint-id="${endpointId}"]`);
    await card.waitFor();
    check(await mobile.locator(`li[data-endpoint-id="${OTHER_ENDPOINT_ID}"]`).count() === 0, 'another workspace\'s endpoint is not listed');
    check(!(await mobile.textContent('#endpoints')).includes(OTHER_ENDPOINT_URL), 'nor its URL');
    await fitsWidth(mobile, 'the endpoints list at 375 px');
    await mobile.goto(`${BASE}/#/endpoints/${OTHER_ENDPOINT_ID}`);
    await mobile.locator('h1', { hasText: 'Not found' }).waitFor();
    check(!(await mobile.textContent('main')).includes(OTHER_ENDPOINT_URL), 'the other endpoint is not shown');
    // A mangled address is not found either, without a script error.
    await mobile.goto(`${BASE}/#/events/%E0%A4%A`);
    await mobile.locator('main .note', { hasText: 'no event' }).waitFor();
  });

  await step('a workspace adds an endpoint, which lands in its own workspace', async () => {
    await mobile.click('a[data-nav="endpoints"]');
    await mobile.click('#add-endpoint');
    await mobile.locator('#endpoint-form').waitFor();
    check(await mobile.locator('#workspace_id').count() === 0, 'no workspace field for a workspace token');
    await fitsWidth(mobile, 'the add form at 375 px');
    await mobile.check('#event-project\\.created');
    // A customer reads no operator's advice (command-line flags) in an error.
    await mobile.fill('#url', 'http://10.1.2.3/hooks');
    await mobile.click('#endpoint-form button[type=submit]');
    await mobile.locator('#error-url', { hasText: 'not public' }).waitFor();
    check(!(await mobile.textContent('#error-url')).includes('--allow'), `no flag in: ${await mobile.textContent('#error-url')}`);
    await mobile.fill('#url', `${RECEIVER_URL}/acme-projects/${'long-path-segment-'.repeat(12)}end`);
    await mobile.click('#endpoint-form button[type=submit]');
    await mobile.locator('#new-secret').waitFor();
    const id = decodeURIComponent(new URL(mobile.url()).hash.split('/')[2]);
    const stored = (await apiCall('GET', `/v1/endpoints/${id}`, ADMIN_TOKEN)).body;
    check(stored.workspace_id === WORKSPACE_ID, `the new endpoint is in ${stored.workspace_id}`);
    // Its long URL wraps in the delete confirmation rather than running off the screen.
    await mobile.click('#delete-endpoint');
    await mobile.locator('#confirm[open]').waitFor();
    const { scroll, width } = await mobile.evaluate(() => {
      const text = document.querySelector('#confirm-text');
      return { scroll: text.scrollWidth, width: text.clientWidth };
    });
    check(scroll <= width, `the dialog text is ${scroll} px wide in ${width} px`);
    await fitsWidth(mobile, 'the delete confirmation at 375 px');
    await mobile.click('#confirm-cancel');
  });

  await step('the endpoint page is readable at 375 px', async () => {
    await mobile.goto(`${BASE}/#/endpoints/${endpointId}`);
    await mobile.locator('details.delivery').first().waitFor();
    await mobile.locator('#chart svg').waitFor();
    await fitsWidth(mobile, 'the endpoint page at 375 px');
    await mobile.locator('details.delivery summary').first().click();
    await mobile.locator('.attempt').first().waitFor();
    await fitsWidth(mobile, 'an open delivery at 375 px');
    await mobile.locator('.attempt button.show-request').first().click();
    await mobile.locator('.attempt .request .headers-table').first().waitFor();
    await fitsWidth(mobile, 'a request as sent at 375 px');
  });

  await step('the deliveries and events views are readable at 375 px', async () => {
    await mobile.click('a[data-nav="deliveries"]');
    await mobile.locator('details.delivery').first().waitFor();
    await fitsWidth(mobile, 'the deliveries view at 375 px');
    await mobile.click('a[data-nav="events"]');
    await mobile.locator('#events li .badge').first().waitFor();
    await fitsWidth(mobile, 'the events view at 375 px');
  });

  await step('a service that does not answer at first offers to try again, and to sign out', async () => {
    tolerated = /status of 503/;
    await mobile.route('**/v1/me', (request) => request.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"The service is starting."}}' }));
    await mobile.reload();
    await mobile.locator('#unreachable', { hasText: 'The service is starting.' }).waitFor();
    check(await mobile.locator('#sign-out').isVisible(), 'Sign out is offered');
    await mobile.unroute('**/v1/me');
    tolerated = null;
    await mobile.click('#try-again');
    await mobile.locator('#who-text', { hasText: `Workspace ${WORKSPACE_ID}` }).waitFor();
    await mobile.locator('#events li').first().waitFor();
  });

  await step('signing out forgets the token', async () => {
    await mobile.click('#sign-out');
    await mobile.locator('#sign-in').waitFor();
    check(await mobile.evaluate(() => sessionStorage.length) === 0, 'sessionStorage is empty');
    await mobile.reload();
    await mobile.locator('#sign-in').waitFor();
  });

  await step('a portal link opened in a tab that shows the dashboard signs in too', async () => {
    // Only the fragment changes, so the page is not loaded again.
    const made = await apiCall('POST', `/v1/workspaces/${WORKSPACE_ID}/portal-links`, ADMIN_TOKEN, {});
    check(made.status === 201, `making a portal link: ${made.status}`);
    await mobile.goto(made.body.url);
    await mobile.locator('#endpoints').waitFor();
    check(!mobile.url().includes('code'), `the URL still carries the code: ${mobile.url()}`);
  });

  await step('a link with a token in it is refused and stripped, and says to make a new one', async () => {
    await mobile.goto(`${BASE}/#token=${encodeURIComponent(WORKSPACE_TOKEN)}`);
    await mobile.locator('#sign-in [data-error-for="_form"]', { hasText: 'ask for a new link' }).waitFor();
    check(!mobile.url().includes('token') && !mobile.url().includes(WORKSPACE_TOKEN), `the URL still carries the token: ${mobile.url()}`);
    check(await mobile.evaluate(() => sessionStorage.length) === 0, 'nothing is kept');
    await mobile.reload();
    await mobile.locator('#sign-in').waitFor();
  });

  await step('signing in from a deep link stays on that page', async () => {
    await mobile.goto(`${BASE}/#/events`);
    await mobile.locator('#sign-in').waitFor();
    await mobile.fill('#token', WORKSPACE_TOKEN);
    await mobile.click('#sign-in button[type=submit]');
    await mobile.locator('#events').waitFor();
    check(new URL(mobile.url()).hash === '#/events', `still on #/events: ${mobile.url()}`);
  });

  await step('a revoked token ends the session at its next request', async () => {
    const revoked = await apiCall('DELETE', `/v1/workspaces/${WORKSPACE_ID}/tokens/${WORKSPACE_TOKEN_ID}`, ADMIN_TOKEN);
    check(revoked.status === 204, `revoking the token: ${revoked.status}`);
    await mobile.click('a[data-nav="endpoints"]');
    await mobile.locator('#sign-in [data-error-for="_form"]', { hasText: 'no longer accepts this session' }).waitFor();
    check((await mobile.textContent('#sign-in')).includes('Open a new link from ClockEye'), 'a customer is told to open a new link');
    check(await mobile.evaluate(() => sessionStorage.length) === 0, 'the revoked token is forgotten');
  });
  await phone.close();
} catch (error) {
  failed = true;
  console.log(`not ok ${steps + 1} - ${error.message}`);
  if (current && !current.isClosed()) {
    const dir = mkdtempSync(join(tmpdir(), 'dashboard-failure-'));
    await current.screenshot({ path: join(dir, 'failure.png'), fullPage: true }).catch(() => {});
    console.log(`# screenshot of the failure: ${join(dir, 'failure.png')}; page URL ${current.url()}`);
  }
  for (const problem of problems) console.log(`# ${problem}`);
} finally {
  await browser.close();
}
if (failed) process.exit(1);
console.log(`dashboard: ${steps} passed, 0 failed`);
