// ClockEye Webhooks dashboard: plain JavaScript, no framework, no build step, compiled into the
// binary. It talks only to the JSON API under /v1 with the token the person signed in with.
//
// Rules kept throughout:
// - Data from the API reaches the page only as text (el(), textContent, text nodes), never as
//   HTML: endpoint descriptions, URLs and response excerpts are written by other people.
// - The token lives in sessionStorage (this tab only), never in the URL. A portal link carries a
//   single-use code (`#code=cew_pl_…`), not a token: it is stripped from the address bar before
//   anything else runs and exchanged once for a 12-hour session token. A link with `#token=` is
//   stripped and refused: a token must never be in a URL (browsers keep URLs in their history).
// - API errors are shown in words next to the field or button they concern.
'use strict';

const TOKEN_KEY = 'clockeye-webhooks.token';
/** How often an endpoint or event page looks again while a delivery is pending or in flight. */
const POLL_MS = 1500;
/** Deliveries and events per page of a list. */
const PAGE_SIZE = 25;
/** How many pages a deliveries list's refresh reads back before it starts the list over. */
const REFRESH_PAGES = 20;
/** How long a retried delivery is watched until it finishes. */
const RETRY_WATCH_MS = 120000;

// A portal link's fragment: taken out of the URL at once, so the code is not left in the address
// bar, history or a screenshot. This runs before anything else, and again when a link is opened
// in a tab that already shows the dashboard (then only the fragment changes and the page is not
// loaded again). Answers {kind: 'code' | 'token', value}, or null when the fragment is neither.
function takeLinkFragment() {
  const match = /^#(code|token)=(.*)$/s.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname + location.search + '#/');
  let value = match[2];
  try {
    value = decodeURIComponent(value);
  } catch (error) {
    // a stray `%`: take the text as it is
  }
  return { kind: match[1], value: value.trim() };
}
const linkAtLoad = takeLinkFragment();

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  me: null, // {role: 'admin'} or {role: 'workspace', workspace_id}
  eventTypes: null, // the catalog, loaded once
  generation: 0, // bumped on every page change: stale async work checks it and stops
  timers: [],
  flash: null, // a one-time notice for the next page (e.g. a new secret)
  workspaceFilter: '', // the admin's endpoints list: one workspace, or all when empty
  link: linkAtLoad, // a portal link's fragment not yet acted on (see takeLinkFragment)
};
// A link is another identity: whoever was signed in in this tab before is forgotten.
if (state.link) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers

/** Creates an element. Strings among children become text nodes, never markup. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  setProps(node, props);
  appendAll(node, children);
  return node;
}

/** Creates an SVG element (for the chart). */
function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    node.setAttribute(name, String(value));
  }
  appendAll(node, children);
  return node;
}

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'selected', 'open', 'type']);

function setProps(node, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) node[name] = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
}

function appendAll(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function $(selector, root) {
  return (root || document).querySelector(selector);
}

/** An absolute time with its zone (`2 Dec 2026, 14:05:09 UTC`): the hover text of every time. */
function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' });
}

/** `just now`, `5 min ago`, `in 30 s`, `3 h ago`, `2 days ago`; past a week, the date. */
function relativeTime(iso, now) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return iso || '—';
  const seconds = Math.round((date.getTime() - (now || Date.now())) / 1000);
  const size = Math.abs(seconds);
  const phrase = (n, unit) => (seconds < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`);
  if (size < 5) return seconds <= 0 ? 'just now' : 'in a few seconds';
  if (size < 60) return phrase(size, 's');
  if (size < 3600) return phrase(Math.round(size / 60), 'min');
  if (size < 86400) return phrase(Math.round(size / 3600), 'h');
  if (size < 7 * 86400) {
    const days = Math.round(size / 86400);
    return phrase(days, days === 1 ? 'day' : 'days');
  }
  return date.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

/** A time shown relative to now, the absolute time and zone on hover; kept fresh (below). */
function timeEl(iso) {
  return el('time', { datetime: iso || null, title: iso ? formatTime(iso) : null, class: iso ? 'relative' : null, text: relativeTime(iso) });
}

/** Relative times go stale: every shown one is written again twice a minute. */
const RELATIVE_REFRESH_MS = 30000;
setInterval(() => {
  const now = Date.now();
  for (const node of document.querySelectorAll('time.relative')) node.textContent = relativeTime(node.dateTime, now);
}, RELATIVE_REFRESH_MS);

function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${Math.round(rate * 1000) / 10}%`;
}

function link(href, text, props) {
  return el('a', Object.assign({ href, text }, props || {}));
}

function endpointHref(id) {
  return `#/endpoints/${encodeURIComponent(id)}`;
}

// Event ids are unique per workspace: the link names the workspace too.
function eventHref(id, workspaceId) {
  return `#/events/${encodeURIComponent(id)}/${encodeURIComponent(workspaceId)}`;
}

function badge(kind, text) {
  return el('span', { class: `badge badge-${kind}`, text: text || kind });
}

/** A live region for the result of an action: text in words, `error` for failures. */
function note() {
  return el('p', { class: 'note', role: 'status', 'aria-live': 'polite' });
}

function say(target, text, kind) {
  target.textContent = text || '';
  target.classList.toggle('error', kind === 'error');
  target.classList.toggle('ok', kind === 'ok');
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

/** Calls the API with the token signed in with; `anonymous`: without one (a portal code). */
async function api(method, path, body, anonymous) {
  const headers = anonymous ? {} : { Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, 'network', 'The service did not answer; check that it is running and try again.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = null;
    }
  }
  if (!response.ok) {
    const problem = (data && data.error) || {};
    const message = problem.message || `The service answered ${response.status}.`;
    const error = new ApiError(response.status, problem.code || `http_${response.status}`, message, problem.field);
    if (response.status === 401 && path !== '/v1/me' && !anonymous) {
      // A customer came with a portal link: a new link, not a token, signs them in again.
      signOut(state.me && state.me.role === 'workspace'
        ? 'The service no longer accepts this session (it was ended or has expired). Open a new link from ClockEye to sign in again.'
        : 'The service no longer accepts your token; sign in again.');
    }
    throw error;
  }
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function eventTypes() {
  if (!state.eventTypes) {
    state.eventTypes = (await api('GET', '/v1/event-types')).data;
  }
  return state.eventTypes;
}

/** Words for an error that has no field to stand next to. */
function words(error) {
  if (!(error instanceof ApiError)) return `Something went wrong: ${error.message}`;
  if (error.status === 403) return `Not allowed: ${tenantText(error.message)}`;
  return tenantText(error.message);
}

/**
 * A customer in the portal (a workspace token) cannot change how the service runs: the hints
 * meant for its operator (command-line flags, the admin token) are left out of what they read.
 */
function tenantText(text) {
  if (!text || !state.me || state.me.role === 'admin') return text;
  return text
    .replace(/ ?\(allow it with --allow-network or --allow-private-networks\)/g, '')
    .replace(/ ?\(http:\/\/ needs --allow-http\)/g, '')
    .replace(/only the admin token may [^;.]*/g, 'only ClockEye can do this');
}

/**
 * Shows an API error next to the form field it names (`events[2]` → the `events` field), or at
 * the form's own message line when no field matches.
 */
function showFormError(form, error) {
  const field = error instanceof ApiError && error.field ? error.field.split(/[.[]/)[0] : null;
  let target = field ? form.querySelector(`[data-error-for="${CSS.escape(field)}"]`) : null;
  if (!target) target = form.querySelector('[data-error-for="_form"]');
  say(target, words(error), 'error');
  const input = field ? form.querySelector(`[name="${CSS.escape(field)}"]`) : null;
  if (input && target.dataset.errorFor === field) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
}

function clearFormErrors(form) {
  for (const target of form.querySelectorAll('[data-error-for]')) say(target, '');
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
}

/** Clears a field's error as soon as the person changes that field. */
function clearOnInput(form) {
  form.addEventListener('input', (event) => {
    const name = event.target.name;
    if (!name) return;
    const target = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (target) say(target, '');
    event.target.removeAttribute('aria-invalid');
  });
  return form;
}

function fieldError(name) {
  return el('p', { class: 'note error field-error', 'data-error-for': name, id: `error-${name}`, role: 'alert' });
}

/** Runs `action` with the button disabled, so a second click cannot send it twice. */
async function busy(button, action) {
  button.disabled = true;
  try {
    return await action();
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Pages and routing

function newPage() {
  state.generation += 1;
  for (const timer of state.timers) clearTimeout(timer);
  state.timers = [];
  const main = $('#main');
  main.replaceChildren();
  window.scrollTo(0, 0);
  return { generation: state.generation, main };
}

function alive(page) {
  return page.generation === state.generation;
}

/** Runs `tick` again after `ms` while the page is shown. */
function later(page, ms, tick) {
  if (!alive(page)) return;
  state.timers.push(setTimeout(() => {
    if (alive(page)) tick();
  }, ms));
}

/** Words for a link that cannot sign in, by why. */
const USED_LINK = 'This link was used already or has expired; ask for a new one.';
const TOKEN_LINK = 'This link carries a token, which links no longer do, and it was not used: ask for a new link (they are made anew, with a code that works once).';

/**
 * Acts on a portal link's fragment: a code is exchanged (once) for a session token; a token in
 * a link is refused. True when the page may go on to route; false when it showed something.
 */
async function followLink() {
  const link = state.link;
  if (link.kind === 'token' || !link.value) {
    state.link = null;
    showSignIn(link.kind === 'token' ? TOKEN_LINK : USED_LINK);
    return false;
  }
  let session;
  try {
    session = await api('POST', '/v1/portal/session', { code: link.value }, true);
  } catch (error) {
    if (error.status === 0 || error.status >= 500) {
      // Not answered: the code is not used up; "Try again" sends it again.
      unreachablePage(error);
      return false;
    }
    state.link = null;
    showSignIn(error.status === 401 || error.status === 400 ? USED_LINK : words(error));
    return false;
  }
  state.link = null;
  sessionStorage.setItem(TOKEN_KEY, session.token);
  state.token = session.token;
  state.me = null;
  state.eventTypes = null;
  state.workspaceFilter = '';
  return true;
}

/** The service did not answer: say so, and offer to try again (or "Sign out", at the top). */
function unreachablePage(error) {
  const page = newPage();
  $('#nav').hidden = true;
  $('#who').hidden = false;
  $('#who-text').textContent = '';
  const again = el('button', { type: 'button', id: 'try-again', text: 'Try again' });
  again.addEventListener('click', () => busy(again, route));
  page.main.append(el('section', { class: 'card narrow', id: 'unreachable' },
    el('h1', { text: 'The service did not answer' }),
    el('p', { class: 'note error', role: 'alert', text: words(error) }),
    el('div', { class: 'row wrap' }, again)));
}

async function route() {
  if (state.link && !(await followLink())) return;
  if (!state.token) {
    showSignIn();
    return;
  }
  if (!state.me) {
    try {
      state.me = await api('GET', '/v1/me');
    } catch (error) {
      if (error.status === 401) {
        signOut('This token is not valid (it may have been revoked or have expired). Sign in again.', 'error', true);
      } else {
        unreachablePage(error);
      }
      return;
    }
  }
  showChrome();
  const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').filter(Boolean).map(decodePart);
  const [section, id, action] = parts;
  markNav(['events', 'portal', 'deliveries'].includes(section) ? section : 'endpoints');
  try {
    if (!section || (section === 'endpoints' && !id)) await endpointsPage();
    else if (section === 'endpoints' && id === 'new') await endpointFormPage(null);
    else if (section === 'endpoints' && action === 'edit') await endpointFormPage(id);
    else if (section === 'endpoints') await endpointPage(id);
    else if (section === 'deliveries') await deliveriesPage();
    else if (section === 'events' && !id) await eventsPage();
    else if (section === 'events') await eventPage(id, action);
    else if (section === 'portal' && state.me.role === 'admin') await portalPage();
    else notFoundPage('There is no such page.');
  } catch (error) {
    if (error.status === 401) return;
    const page = newPage();
    if (error.status === 404) notFoundPage(words(error));
    else page.main.append(el('p', { class: 'note error', role: 'alert', text: words(error) }));
  }
}

/** A part of the address after `#/`, decoded; a malformed escape is kept as it is. */
function decodePart(part) {
  try {
    return decodeURIComponent(part);
  } catch (error) {
    return part;
  }
}

function notFoundPage(message) {
  const page = newPage();
  page.main.append(
    el('h1', { text: 'Not found' }),
    el('p', { class: 'note error', role: 'alert', text: message }),
    el('p', {}, link('#/', 'Back to endpoints')),
  );
}

function showChrome() {
  const me = state.me;
  $('#nav').hidden = false;
  $('#who').hidden = false;
  $('#nav-portal').hidden = me.role !== 'admin';
  $('#who-text').textContent = me.role === 'admin' ? 'Admin' : `Workspace ${me.workspace_id}`;
}

function markNav(name) {
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

/** Forgets the token; `keepRoute`: leave the address as it is, to come back to it. */
function signOut(message, kind, keepRoute) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.me = null;
  state.eventTypes = null;
  state.workspaceFilter = '';
  state.link = null;
  if (!keepRoute) history.replaceState(null, '', location.pathname + location.search);
  showSignIn(message, kind);
}

function showSignIn(message, kind) {
  const page = newPage();
  $('#nav').hidden = true;
  $('#who').hidden = true;
  const input = el('input', {
    name: 'token', id: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false',
    required: true, 'aria-describedby': 'error-token',
  });
  const form = clearOnInput(el('form', { class: 'card narrow', id: 'sign-in', novalidate: true },
    el('h1', { text: 'Sign in' }),
    el('p', { text: 'Came with a link to your webhook settings? It signs you in by itself; once used or expired, ask for a new one. Otherwise paste a token.' }),
    el('label', { for: 'token', text: 'Token' }),
    input,
    fieldError('token'),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('button', { type: 'submit', text: 'Sign in' }),
  ));
  if (message) say($('[data-error-for="_form"]', form), message, kind || 'error');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    const token = input.value.trim();
    if (!token) {
      showFormError(form, new ApiError(0, 'missing', 'Enter a token.', 'token'));
      return;
    }
    state.token = token;
    try {
      state.me = await busy(form.querySelector('button'), () => api('GET', '/v1/me'));
    } catch (error) {
      state.token = null;
      const shown = error.status === 401
        ? new ApiError(401, error.code, 'This token is not valid: check that it was copied whole.', 'token')
        : error;
      showFormError(form, shown);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    // Stay on the page the address asks for (a deep link opened before signing in).
    route();
  });
  page.main.append(form);
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// Endpoints list

async function endpointsPage() {
  const page = newPage();
  const admin = state.me.role === 'admin';
  page.main.append(
    el('div', { class: 'row between' },
      el('h1', { text: admin ? 'Endpoints' : `Webhook endpoints of ${state.me.workspace_id}` }),
      link('#/endpoints/new', 'Add endpoint', { class: 'button', id: 'add-endpoint' })),
  );
  // The admin sees every workspace's endpoints, and may narrow the list to one workspace.
  const filter = admin ? clearOnInput(el('form', { class: 'filter', id: 'workspace-filter', novalidate: true },
    el('div', { class: 'row wrap' },
      el('label', { for: 'filter-workspace', class: 'inline', text: 'Workspace' }),
      el('input', { id: 'filter-workspace', name: 'workspace_id', type: 'text', autocomplete: 'off', placeholder: 'all workspaces', value: state.workspaceFilter || '' }),
      el('button', { type: 'submit', class: 'secondary small', text: 'Show' })),
    fieldError('workspace_id'),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }))) : null;
  const list = el('ul', { class: 'endpoint-table', id: 'endpoints', 'aria-label': 'Endpoints' });
  const head = el('li', { class: 'endpoint-row head', 'aria-hidden': 'true' },
    el('span', { text: 'Endpoint' }), el('span', { text: 'Health' }), el('span', { text: 'Success, 24 h' }),
    el('span', { text: 'Per hour, 24 h' }), el('span', { text: 'Flow' }));
  const more = el('button', { type: 'button', class: 'secondary', text: 'Show more', hidden: true });
  const message = note();
  page.main.append(filter || '', list, message, more);
  let next = null;
  const load = async () => {
    const workspace = admin ? state.workspaceFilter : null;
    const answer = await api('GET', `/v1/endpoints${query({ workspace_id: workspace, limit: PAGE_SIZE, after: next })}`);
    if (!alive(page)) return;
    if (answer.data.length && !list.children.length) list.append(head);
    for (const endpoint of answer.data) list.append(endpointCard(endpoint, admin));
    next = answer.next;
    more.hidden = !next;
    if (!list.children.length) {
      say(message, workspace ? `No endpoints in workspace ${workspace}.` : 'No endpoints yet. Add one to start receiving events.');
    } else {
      say(message, '');
    }
  };
  if (filter) {
    filter.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearFormErrors(filter);
      state.workspaceFilter = filter.elements.workspace_id.value.trim();
      list.replaceChildren();
      next = null;
      try {
        await busy(filter.querySelector('button'), load);
      } catch (error) {
        showFormError(filter, error);
      }
    });
  }
  more.addEventListener('click', () => busy(more, load).catch((error) => say(message, words(error), 'error')));
  await load();
}

/**
 * An endpoint's health in colour and words: disabled (and why), failing since when, some
 * failures, healthy, or no deliveries yet. `stats` (the last 24 hours) may not be known yet.
 */
function health(endpoint, stats) {
  if (!endpoint.enabled) return { kind: 'disabled', text: 'Disabled', why: endpoint.disabled_reason || 'disabled by hand' };
  if (endpoint.failing_since) return { kind: 'failed', text: `Failing since ${relativeTime(endpoint.failing_since)}`, title: formatTime(endpoint.failing_since), why: 'every attempt since then failed' };
  if (!stats) return { kind: 'off', text: 'Enabled' };
  const finished = stats.totals.succeeded + stats.totals.failed;
  if (!finished) return { kind: 'off', text: 'No deliveries yet', why: 'nothing finished in the last 24 hours' };
  if (stats.success_rate < HEALTHY_RATE) return { kind: 'pending', text: 'Some failures', why: `${percent(1 - stats.success_rate)} failed in the last 24 hours` };
  return { kind: 'succeeded', text: 'Healthy' };
}
/** Below this success rate over 24 hours an endpoint that still gets through shows "Some failures". */
const HEALTHY_RATE = 0.95;

function healthBadge(endpoint, stats, id) {
  const shown = health(endpoint, stats);
  const node = badge(shown.kind, shown.text);
  if (id) node.id = id;
  if (shown.title) node.title = shown.title;
  return node;
}

/** Kept for the endpoint page's heading: the same words as the list. */
function statusBadge(endpoint) {
  return healthBadge(endpoint, null);
}

/** What an endpoint's flow control is now: its adaptive window, rate limit and ordering. */
function flowText(endpoint) {
  const parts = [`window ${endpoint.window}`];
  parts.push(endpoint.rate_limit != null ? `≤ ${endpoint.rate_limit}/s` : 'no rate limit');
  if (endpoint.ordering === 'subject') parts.push('ordered by subject');
  return parts.join(' · ');
}

/** One row of the endpoints table: URL, health, success rate, a small per-hour chart, flow. */
function endpointCard(endpoint, admin) {
  endpointUrls.set(endpoint.id, endpoint.url);
  const healthCell = el('div', { class: 'cell health' }, healthBadge(endpoint, null));
  const rate = el('div', { class: 'cell success-rate', text: '…' });
  const spark = el('div', { class: 'cell spark' });
  const row = el('li', { class: 'endpoint-row', 'data-endpoint-id': endpoint.id },
    el('div', { class: 'cell main' },
      el('h2', { class: 'url' }, link(endpointHref(endpoint.id), endpoint.url)),
      endpoint.description ? el('p', { class: 'description', text: endpoint.description }) : null,
      el('p', { class: 'muted small' },
        endpoint.events.includes('*') ? 'all event types' : endpoint.events.join(', '),
        admin ? ` · workspace ${endpoint.workspace_id}` : null)),
    healthCell, rate, spark,
    el('div', { class: 'cell flow muted', text: flowText(endpoint) }),
  );
  const why = (shown) => (shown.why ? el('p', { class: 'muted small why', text: shown.why }) : null);
  healthCell.append(why(health(endpoint, null)) || '');
  api('GET', `/v1/endpoints/${encodeURIComponent(endpoint.id)}/stats?hours=24`).then((stats) => {
    const shown = health(endpoint, stats);
    healthCell.replaceChildren(healthBadge(endpoint, stats), why(shown) || '');
    if (stats.last_success_at) healthCell.append(el('p', { class: 'muted small' }, 'last success ', timeEl(stats.last_success_at)));
    const finished = stats.totals.succeeded + stats.totals.failed;
    rate.textContent = finished ? `${percent(stats.success_rate)} of ${finished}` : '—';
    rate.classList.toggle('error', finished > 0 && stats.success_rate < HEALTHY_RATE);
    spark.replaceChildren(sparkline(stats));
  }, (error) => {
    rate.textContent = '';
    healthCell.append(el('p', { class: 'error small', text: words(error) }));
  });
  return row;
}

/** The last 24 hours as 24 small stacked bars (succeeded under failed), 96 × 24 px. */
function sparkline(stats) {
  const w = 96;
  const h = 24;
  const buckets = stats.hourly.slice(-24);
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed + b.pending));
  const slot = w / Math.max(1, buckets.length);
  const t = stats.totals;
  const root = svg('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: 'sparkline', role: 'img',
    'aria-label': `last 24 hours: ${t.succeeded} succeeded, ${t.failed} failed` });
  buckets.forEach((bucket, index) => {
    let y = h;
    for (const name of ['succeeded', 'failed', 'pending']) {
      if (!bucket[name]) continue;
      const height = Math.max(1, (bucket[name] / max) * h);
      y -= height;
      root.append(svg('rect', { x: (index * slot + 0.5).toFixed(1), y: y.toFixed(1), width: Math.max(1, slot - 1).toFixed(1), height: height.toFixed(1), class: `bar bar-${name}` }));
    }
  });
  root.append(svg('line', { x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5, class: 'axis' }));
  return root;
}

// ---------------------------------------------------------------------------------------------
// Add or edit an endpoint

async function endpointFormPage(id) {
  const page = newPage();
  const [types, endpoint] = await Promise.all([
    eventTypes(),
    id ? api('GET', `/v1/endpoints/${encodeURIComponent(id)}`) : Promise.resolve(null),
  ]);
  if (!alive(page)) return;
  const admin = state.me.role === 'admin';
  const subscribed = new Set(endpoint ? endpoint.events : []);
  const all = el('input', { type: 'checkbox', name: 'events', value: '*', id: 'event-all', checked: subscribed.has('*') });
  const boxes = types.map((type) => el('input', {
    type: 'checkbox', name: 'events', value: type.type, id: `event-${type.type}`, checked: subscribed.has(type.type),
  }));
  const syncAll = () => {
    for (const box of boxes) box.disabled = all.checked;
  };
  const headersEditor = headerRows(endpoint ? Object.keys(endpoint.headers || {}) : []);
  all.addEventListener('change', syncAll);
  syncAll();
  const form = clearOnInput(el('form', { class: 'card', id: 'endpoint-form', novalidate: true },
    el('h1', { text: endpoint ? 'Edit endpoint' : 'Add endpoint' }),
    el('label', { for: 'url', text: 'URL' }),
    el('input', {
      id: 'url', name: 'url', type: 'text', inputmode: 'url', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'https://example.com/webhooks/clockeye', value: endpoint ? endpoint.url : '',
      'aria-describedby': 'error-url',
    }),
    fieldError('url'),
    el('label', { for: 'description', text: 'Description (optional)' }),
    el('textarea', { id: 'description', name: 'description', rows: 2, value: endpoint ? endpoint.description : '' }),
    fieldError('description'),
    admin && !endpoint ? [
      el('label', { for: 'workspace_id', text: 'Workspace' }),
      el('input', { id: 'workspace_id', name: 'workspace_id', type: 'text', placeholder: 'default', autocomplete: 'off' }),
      fieldError('workspace_id'),
    ] : null,
    el('fieldset', { class: 'event-types', 'aria-describedby': 'error-events' },
      el('legend', { text: 'Event types' }),
      el('label', { class: 'check', for: 'event-all' }, all, el('span', {}, el('strong', { text: 'All event types' }),
        el('small', { text: 'including types added later' }))),
      types.map((type, index) => el('label', { class: 'check', for: `event-${type.type}` }, boxes[index],
        el('span', {}, el('code', { text: type.type }), el('small', { text: type.description })))),
    ),
    fieldError('events'),
    el('label', { for: 'rate_limit', text: 'Rate limit, deliveries per second (optional, 1–10000)' }),
    el('input', {
      id: 'rate_limit', name: 'rate_limit', type: 'number', min: '1', max: '10000', step: '1', placeholder: 'no limit',
      value: endpoint && endpoint.rate_limit != null ? String(endpoint.rate_limit) : '', 'aria-describedby': 'error-rate_limit',
    }),
    fieldError('rate_limit'),
    el('label', { class: 'check', for: 'ordering' },
      el('input', { id: 'ordering', name: 'ordering', type: 'checkbox', checked: Boolean(endpoint && endpoint.ordering === 'subject') }),
      el('span', {}, el('strong', { text: 'Keep the order of events about the same object' }),
        el('small', { text: 'an event waits until the earlier ones about its object (e.g. time_entry:te_1) succeeded or failed' }))),
    fieldError('ordering'),
    headersEditor.element,
    fieldError('headers'),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('div', { class: 'row' },
      el('button', { type: 'submit', text: endpoint ? 'Save' : 'Add endpoint' }),
      link(endpoint ? endpointHref(endpoint.id) : '#/', 'Cancel', { class: 'button secondary' })),
  ));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    const body = {
      url: form.elements.url.value.trim(),
      events: all.checked ? ['*'] : boxes.filter((box) => box.checked).map((box) => box.value),
      description: form.elements.description.value,
      rate_limit: form.elements.rate_limit.value.trim() === '' ? null : Number(form.elements.rate_limit.value),
      ordering: form.elements.ordering.checked ? 'subject' : 'none',
    };
    if (!body.events.length) {
      showFormError(form, new ApiError(0, 'missing', 'Choose at least one event type.', 'events'));
      return;
    }
    if (form.elements.workspace_id && form.elements.workspace_id.value.trim()) {
      body.workspace_id = form.elements.workspace_id.value.trim();
    }
    const headers = headersEditor.value();
    if (headers.error) {
      showFormError(form, new ApiError(0, 'missing', headers.error, 'headers'));
      return;
    }
    if (headers.changed) body.headers = headers.headers;
    try {
      const saved = await busy(form.querySelector('button[type=submit]'), () => endpoint
        ? api('PATCH', `/v1/endpoints/${encodeURIComponent(endpoint.id)}`, body)
        : api('POST', '/v1/endpoints', body));
      if (!endpoint) {
        state.flash = { kind: 'secret', title: 'Endpoint added. Its signing secret (shown here once; "Reveal secret" shows it again):', secret: saved.secret };
      } else {
        state.flash = { kind: 'ok', title: 'Saved.' };
      }
      location.hash = endpointHref(saved.id);
    } catch (error) {
      showFormError(form, error);
    }
  });
  page.main.append(form);
}

/**
 * The extra headers of an endpoint (e.g. `Authorization: Basic …`), as rows of name and value.
 * Saved values are never shown again (they often hold credentials): a kept header's value field
 * is empty, and the headers are sent only when something changed, so an untouched edit keeps
 * them. Once one changes, every header is sent anew and each needs its value.
 */
function headerRows(savedNames) {
  const rows = el('div', { class: 'header-rows', id: 'header-rows' });
  let changed = false;
  const add = (name, saved) => {
    const nameInput = el('input', { type: 'text', class: 'header-name', 'aria-label': 'Header name', placeholder: 'Authorization', autocomplete: 'off', spellcheck: 'false', value: name || '' });
    const valueInput = el('input', { type: 'password', class: 'header-value', 'aria-label': 'Header value', autocomplete: 'off', spellcheck: 'false', placeholder: saved ? 'saved (not shown); type to replace' : 'value' });
    const remove = el('button', { type: 'button', class: 'secondary small', text: 'Remove', 'aria-label': `Remove header ${name || ''}`.trim() });
    const row = el('div', { class: 'header-row' }, nameInput, valueInput, remove);
    row.dataset.saved = saved ? 'yes' : '';
    nameInput.addEventListener('input', () => { changed = true; });
    valueInput.addEventListener('input', () => { changed = true; });
    remove.addEventListener('click', () => {
      changed = true;
      row.remove();
    });
    rows.append(row);
    return row;
  };
  for (const name of savedNames) add(name, true);
  const addButton = el('button', { type: 'button', class: 'secondary small', id: 'add-header', text: 'Add header' });
  addButton.addEventListener('click', () => {
    changed = true;
    add('', false).querySelector('input').focus();
  });
  const element = el('fieldset', { class: 'headers', 'aria-describedby': 'error-headers' },
    el('legend', { text: 'Extra headers (optional)' }),
    el('p', { class: 'muted small', text: 'Sent with every delivery, e.g. Authorization for a receiver behind basic auth. Values are kept secret: once saved they are not shown again.' }),
    rows, addButton);
  const value = () => {
    if (!changed) return { changed: false };
    const headers = {};
    for (const row of rows.querySelectorAll('.header-row')) {
      const name = row.querySelector('.header-name').value.trim();
      const text = row.querySelector('.header-value').value;
      if (!name && !text) continue;
      if (!name) return { error: 'A header needs a name.' };
      if (!text) {
        return { error: row.dataset.saved
          ? `Enter the value of ${name} again: saved values are not shown, and the headers are saved together.`
          : `Enter a value for ${name}.` };
      }
      headers[name] = text;
    }
    return { changed: true, headers };
  };
  return { element, value };
}

// ---------------------------------------------------------------------------------------------
// One endpoint

function secretBox(title, secret, id) {
  const code = el('code', { class: 'secret', id, text: secret });
  const status = el('span', { class: 'muted', role: 'status' });
  const copy = el('button', { type: 'button', class: 'secondary small', text: 'Copy' });
  copy.addEventListener('click', () => copyText(secret, code, status));
  return el('div', { class: 'secret-box' }, title ? el('p', { text: title }) : null,
    el('div', { class: 'row wrap' }, code, copy, status));
}

function copyText(text, node, status) {
  const selectIt = () => {
    const range = document.createRange();
    range.selectNodeContents(node);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    status.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
  };
  if (!navigator.clipboard || !window.isSecureContext) {
    selectIt();
    return;
  }
  navigator.clipboard.writeText(text).then(() => {
    status.textContent = 'Copied.';
  }, selectIt);
}

async function endpointPage(id) {
  const page = newPage();
  const path = `/v1/endpoints/${encodeURIComponent(id)}`;
  const endpoint = await api('GET', path);
  if (!alive(page)) return;
  const flash = state.flash;
  state.flash = null;

  const admin = state.me.role === 'admin';
  const head = el('section', { class: 'card', id: 'endpoint' },
    el('p', {}, link('#/', '← Endpoints')),
    el('div', { class: 'row between' },
      el('h1', { class: 'url', id: 'endpoint-url', text: endpoint.url }),
      el('span', { id: 'endpoint-status' }, statusBadge(endpoint))),
    endpoint.description ? el('p', { class: 'description', id: 'endpoint-description', text: endpoint.description }) : null,
    endpoint.enabled ? null : el('p', { class: 'note error', id: 'disabled-reason', text: `Disabled: ${endpoint.disabled_reason || 'no reason recorded'}` }),
    el('dl', { class: 'facts' },
      el('dt', { text: 'Id' }), el('dd', {}, el('code', { text: endpoint.id })),
      admin ? [el('dt', { text: 'Workspace' }), el('dd', { text: endpoint.workspace_id })] : null,
      el('dt', { text: 'Event types' }),
      el('dd', { class: 'chips' }, endpoint.events.map((name) => el('code', { class: 'chip', text: name === '*' ? 'all event types' : name }))),
      el('dt', { text: 'Created' }), el('dd', {}, timeEl(endpoint.created_at)),
      Object.keys(endpoint.headers || {}).length
        ? [el('dt', { text: 'Extra headers' }), el('dd', { class: 'chips' }, Object.keys(endpoint.headers).map((name) => el('code', { class: 'chip', text: name })))]
        : null,
      el('dt', { id: 'previous-secret-label', text: 'Old secret signs until', hidden: !endpoint.previous_secret_expires_at }),
      el('dd', { id: 'previous-secret-until', hidden: !endpoint.previous_secret_expires_at },
        endpoint.previous_secret_expires_at ? timeEl(endpoint.previous_secret_expires_at) : ''),
      endpoint.failing_since ? [el('dt', { text: 'Failing since' }), el('dd', { class: 'error' }, timeEl(endpoint.failing_since))] : null,
      el('dt', { text: 'Window' }), el('dd', { id: 'endpoint-window', text: `${endpoint.window} attempts at once (adapts to how the receiver copes)` }),
      el('dt', { text: 'Rate limit' }), el('dd', { id: 'endpoint-rate-limit', text: endpoint.rate_limit != null ? `${endpoint.rate_limit} per second` : 'none' }),
      el('dt', { text: 'Ordering' }), el('dd', { id: 'endpoint-ordering', text: endpoint.ordering === 'subject' ? 'by subject' : 'none' }),
    ),
  );
  if (flash && flash.kind === 'secret') head.prepend(el('div', { class: 'flash', id: 'flash' }, secretBox(flash.title, flash.secret, 'new-secret')));
  if (flash && flash.kind === 'ok') head.prepend(el('p', { class: 'flash note ok', role: 'status', text: flash.title }));

  // Edit, enable or disable, delete.
  const actionNote = note();
  actionNote.id = 'endpoint-action-note';
  const toggle = el('button', { type: 'button', class: 'secondary', id: 'toggle-enabled', text: endpoint.enabled ? 'Disable' : 'Enable' });
  toggle.addEventListener('click', () => busy(toggle, async () => {
    try {
      await api('PATCH', path, { enabled: !endpoint.enabled });
      state.flash = { kind: 'ok', title: endpoint.enabled ? 'Disabled: nothing is sent to it until it is enabled again; new deliveries wait.' : 'Enabled: waiting deliveries go out now.' };
      route();
    } catch (error) {
      say(actionNote, words(error), 'error');
    }
  }));
  const remove = el('button', { type: 'button', class: 'danger', id: 'delete-endpoint', text: 'Delete' });
  remove.addEventListener('click', async () => {
    const sure = await confirmDialog(`Delete the endpoint ${endpoint.url}? Its deliveries and their history go with it. This cannot be undone.`, 'Delete');
    if (!sure) return;
    busy(remove, async () => {
      try {
        await api('DELETE', path);
        location.hash = '#/';
      } catch (error) {
        say(actionNote, words(error), 'error');
      }
    });
  });
  head.append(el('div', { class: 'row wrap' },
    link(`${endpointHref(endpoint.id)}/edit`, 'Edit', { class: 'button secondary', id: 'edit-endpoint' }), toggle, remove), actionNote);

  page.main.append(head, secretSection(endpoint, path), testSection(endpoint, path, page));
  // The heading's badge says the endpoint's health once its last 24 hours are known.
  const chart = chartSection(path, page, (stats) => {
    if (stats.hours === 24) $('#endpoint-status').replaceChildren(healthBadge(endpoint, stats));
  });
  page.main.append(chart.section);
  const deliveries = deliveryList({ endpoint_id: endpoint.id }, page, { onChange: chart.reload });
  page.main.append(
    el('section', { class: 'card', id: 'deliveries-section' }, el('h2', { text: 'Deliveries' }), deliveries.element),
    recoverSection(path, deliveries),
  );
  page.refreshDeliveries = deliveries.refresh;
}

function secretSection(endpoint, path) {
  const shown = el('div', { id: 'secret-shown' });
  const revealNote = note();
  const reveal = el('button', { type: 'button', class: 'secondary', id: 'reveal-secret', text: 'Reveal secret' });
  reveal.addEventListener('click', () => busy(reveal, async () => {
    if (shown.childElementCount) {
      shown.replaceChildren();
      reveal.textContent = 'Reveal secret';
      return;
    }
    try {
      const answer = await api('GET', `${path}/secret`);
      say(revealNote, '');
      shown.replaceChildren(secretBox(null, answer.secret, 'secret'));
      if (answer.previous_secret) {
        shown.append(el('p', { class: 'muted' }, 'The previous secret also signs until ', timeEl(answer.previous_secret_expires_at), ':'),
          secretBox(null, answer.previous_secret, 'previous-secret'));
      }
      reveal.textContent = 'Hide secret';
    } catch (error) {
      say(revealNote, words(error), 'error');
    }
  }));

  const overlap = el('select', { name: 'overlap', id: 'overlap' },
    el('option', { value: '24h', text: 'keep the old secret working for 24 hours', selected: true }),
    el('option', { value: '1h', text: 'keep the old secret working for 1 hour' }),
    el('option', { value: '0s', text: 'stop the old secret now (it leaked)' }));
  const rotated = el('div', { id: 'rotated' });
  const rotate = el('button', { type: 'submit', id: 'rotate-secret', text: 'Rotate secret' });
  const form = clearOnInput(el('form', { class: 'stack', id: 'rotate-form', novalidate: true },
    el('label', { for: 'overlap', text: 'When rotating' }), overlap, fieldError('overlap'),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('div', { class: 'row' }, rotate), rotated));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    // Stopping the old secret at once cannot be undone: a receiver not yet given the new one
    // fails every delivery until it is.
    if (overlap.value === '0s' && !(await confirmDialog(
      'Stop the old secret now? Receivers that still check it will refuse every delivery (401) until they have the new secret. This cannot be undone.',
      'Rotate and stop the old secret'))) return;
    try {
      const answer = await busy(rotate, () => api('POST', `${path}/rotate-secret`, { overlap: overlap.value }));
      // The heading's "old secret signs until" follows at once, without a reload.
      const label = $('#previous-secret-label');
      const untilNode = $('#previous-secret-until');
      if (label && untilNode) {
        label.hidden = !answer.previous_secret_expires_at;
        untilNode.hidden = !answer.previous_secret_expires_at;
        untilNode.replaceChildren(answer.previous_secret_expires_at ? timeEl(answer.previous_secret_expires_at) : '');
      }
      shown.replaceChildren();
      reveal.textContent = 'Reveal secret';
      const until = answer.previous_secret_expires_at
        ? ` The old one also signs until ${formatTime(answer.previous_secret_expires_at)}.`
        : ' The old one no longer signs.';
      rotated.replaceChildren(secretBox(`New secret (shown here once; "Reveal secret" shows it again).${until}`, answer.secret, 'rotated-secret'));
    } catch (error) {
      showFormError(form, error);
    }
  });
  return el('section', { class: 'card', id: 'secret-section' },
    el('h2', { text: 'Signing secret' }),
    el('p', { class: 'muted', text: 'Receivers check X-ClockEye-Signature (and webhook-signature) with this secret.' }),
    el('div', { class: 'row' }, reveal), revealNote, shown, form);
}

function testSection(endpoint, path, page) {
  const select = el('select', { name: 'type', id: 'test-type' });
  const types = endpoint.events.includes('*') ? null : endpoint.events;
  const fill = (names) => select.replaceChildren(...names.map((name) => el('option', { value: name, text: name })));
  if (types) fill(types);
  else eventTypes().then((all) => fill(all.map((type) => type.type)), () => fill(['time_entry.created']));
  const send = el('button', { type: 'submit', id: 'send-test', text: 'Send test event' });
  const result = el('p', { class: 'note', id: 'test-result', role: 'status' });
  const form = clearOnInput(el('form', { class: 'stack', id: 'test-form', novalidate: true },
    el('label', { for: 'test-type', text: 'Event type' }),
    el('div', { class: 'row wrap' }, select, send),
    el('p', { class: 'note error', 'data-error-for': 'type', id: 'error-type', role: 'alert' }),
    el('p', { class: 'note error', 'data-error-for': '_form', id: 'test-error', role: 'alert' }),
    result));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    say(result, '');
    try {
      const answer = await busy(send, () => api('POST', `${path}/test`, { type: select.value }));
      say(result, `Test event ${answer.id} (${answer.type}) sent; its delivery is at the top of the list below.`, 'ok');
      if (page.refreshDeliveries) page.refreshDeliveries();
    } catch (error) {
      if (error.code === 'endpoint_disabled') {
        error.message = 'This endpoint is disabled, so nothing can be sent to it. Enable it first.';
      }
      showFormError(form, error);
    }
  });
  return el('section', { class: 'card', id: 'test-section' },
    el('h2', { text: 'Send a test event' }),
    el('p', { class: 'muted', text: 'A sample event of the chosen type goes to this endpoint only, signed like any other.' }),
    form);
}

function recoverSection(path, deliveries) {
  const local = (date) => {
    const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return shifted.toISOString().slice(0, 16);
  };
  const since = el('input', { type: 'datetime-local', id: 'recover-since', name: 'since', value: local(new Date(Date.now() - 24 * 3600 * 1000)) });
  const until = el('input', { type: 'datetime-local', id: 'recover-until', name: 'until' });
  const submit = el('button', { type: 'submit', id: 'recover', text: 'Recover failed deliveries' });
  const result = el('p', { class: 'note', id: 'recover-result', role: 'status' });
  const form = clearOnInput(el('form', { class: 'stack', id: 'recover-form', novalidate: true },
    el('div', { class: 'grid2' },
      el('div', {}, el('label', { for: 'recover-since', text: 'Failed since' }), since, fieldError('since')),
      el('div', {}, el('label', { for: 'recover-until', text: 'Until (optional)' }), until, fieldError('until'))),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('div', { class: 'row' }, submit), result));
  const iso = (input) => {
    if (!input.value) return null;
    const date = new Date(input.value);
    return Number.isNaN(date.getTime()) ? input.value : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    say(result, '');
    const body = { since: iso(since) };
    if (!body.since) {
      showFormError(form, new ApiError(0, 'missing', 'Choose the time from which failed deliveries are sent again.', 'since'));
      return;
    }
    if (iso(until)) body.until = iso(until);
    try {
      // The server moves a bounded number per call; go on from its cursor while it has more.
      let n = 0;
      let answer;
      await busy(submit, async () => {
        for (let calls = 0; calls < 100; calls += 1) {
          answer = await api('POST', `${path}/recover`, body);
          n += answer.requeued;
          if (!answer.more) break;
          body.after = answer.next;
        }
      });
      const text = n === 0 ? 'No failed deliveries in that window.' : `${n} failed ${n === 1 ? 'delivery goes' : 'deliveries go'} out again now.`;
      say(result, answer.more ? `${text} There are more: recover again for the next ones.` : text, 'ok');
      deliveries.refresh();
    } catch (error) {
      showFormError(form, error);
    }
  });
  return el('section', { class: 'card', id: 'recover-section' },
    el('h2', { text: 'Recover failed deliveries' }),
    el('p', { class: 'muted', text: 'After an outage: send every delivery that failed in a time window again (the attempt count goes on).' }),
    form);
}

// ---------------------------------------------------------------------------------------------
// The chart: deliveries per hour by outcome, as inline SVG

function chartSection(path, page, onStats) {
  const hours = el('select', { id: 'chart-hours', 'aria-label': 'Period' },
    el('option', { value: '24', text: 'last 24 hours', selected: true }),
    el('option', { value: '72', text: 'last 3 days' }),
    el('option', { value: '168', text: 'last 7 days' }));
  const figure = el('figure', { class: 'chart', id: 'chart' });
  const summary = el('p', { class: 'muted', id: 'chart-summary' });
  const section = el('section', { class: 'card', id: 'chart-section' },
    el('div', { class: 'row between wrap' }, el('h2', { text: 'Deliveries per hour' }), hours), figure, summary);
  const reload = async () => {
    try {
      const stats = await api('GET', `${path}/stats?hours=${hours.value}`);
      if (!alive(page)) return;
      figure.replaceChildren(chart(stats, figure.clientWidth || 600), legend());
      if (onStats) onStats(stats);
      const t = stats.totals;
      summary.textContent = `${t.succeeded} succeeded, ${t.failed} failed, ${t.pending + t.delivering} pending; `
        + `success rate ${percent(stats.success_rate)}; last success ${stats.last_success_at ? `${relativeTime(stats.last_success_at)} (${formatTime(stats.last_success_at)})` : 'never'}.`;
    } catch (error) {
      if (alive(page)) say(summary, words(error), 'error');
    }
  };
  hours.addEventListener('change', reload);
  reload();
  return { section, reload };
}

const OUTCOMES = [['succeeded', 'succeeded'], ['failed', 'failed'], ['pending', 'pending or in flight']];

function legend() {
  return el('figcaption', { class: 'legend' }, OUTCOMES.map(([name, text]) => el('span', {},
    el('span', { class: `swatch swatch-${name}` }), text)));
}

/** `14:00`, or `Tue 14:00` when the chart spans days: short enough for a phone. */
function hourLabel(date, withDay) {
  const time = `${String(date.getHours()).padStart(2, '0')}:00`;
  return withDay ? `${date.toLocaleDateString(undefined, { weekday: 'short' })} ${time}` : time;
}

function chart(stats, width) {
  const w = Math.max(280, Math.min(960, Math.round(width)));
  const h = 150;
  const left = 32;
  const bottom = 22;
  const top = 8;
  const buckets = stats.hourly;
  const max = Math.max(1, ...buckets.map((b) => b.succeeded + b.failed + b.pending));
  const slot = (w - left - 4) / Math.max(1, buckets.length);
  const bar = Math.max(1, slot * 0.8);
  const scale = (h - top - bottom) / max;
  const root = svg('svg', {
    viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: 'img', class: 'chart-svg',
    'aria-label': `Deliveries per hour over the last ${stats.hours} hours, by outcome`,
  });
  root.append(
    svg('line', { x1: left, y1: h - bottom, x2: w, y2: h - bottom, class: 'axis' }),
    svg('text', { x: left - 4, y: top + 8, class: 'tick', 'text-anchor': 'end' }, String(max)),
    svg('text', { x: left - 4, y: h - bottom, class: 'tick', 'text-anchor': 'end' }, '0'),
  );
  const labelEvery = Math.ceil(buckets.length / Math.max(1, Math.floor((w - left) / (stats.hours > 24 ? 72 : 44))));
  buckets.forEach((bucket, index) => {
    const x = left + index * slot + (slot - bar) / 2;
    let y = h - bottom;
    const hour = new Date(bucket.hour);
    const label = `${hour.toLocaleDateString(undefined, { dateStyle: 'medium' })} ${hourLabel(hour, false)}`;
    const group = svg('g', { class: 'bucket' },
      svg('title', {}, `${label}: ${bucket.succeeded} succeeded, ${bucket.failed} failed, ${bucket.pending} pending`));
    for (const [name] of OUTCOMES) {
      const count = bucket[name];
      if (!count) continue;
      const height = Math.max(1, count * scale);
      y -= height;
      group.append(svg('rect', { x: x.toFixed(1), y: y.toFixed(1), width: bar.toFixed(1), height: height.toFixed(1), class: `bar bar-${name}` }));
    }
    root.append(group);
    if (index % labelEvery === 0) {
      root.append(svg('text', { x: (x + bar / 2).toFixed(1), y: h - 6, class: 'tick', 'text-anchor': 'middle' },
        hourLabel(hour, stats.hours > 24)));
    }
  });
  return root;
}

// ---------------------------------------------------------------------------------------------
// Deliveries: a list newest first, each opening to its attempts

const STATUSES = ['pending', 'delivering', 'succeeded', 'failed'];

/**
 * A list of deliveries for `filter` ({endpoint_id} or {event_id}); refreshes itself while a
 * shown delivery is pending or in flight. Returns {element, refresh}.
 */
function deliveryList(filter, page, options) {
  const rows = new Map(); // delivery id → {details, update}
  const status = el('select', { id: 'delivery-status', 'aria-label': 'Status' },
    el('option', { value: '', text: 'all statuses' }),
    STATUSES.map((name) => el('option', { value: name, text: name })));
  const refreshButton = el('button', { type: 'button', class: 'secondary small', text: 'Refresh' });
  const list = el('div', { class: 'deliveries', id: 'deliveries' });
  const message = note();
  const more = el('button', { type: 'button', class: 'secondary', text: 'Show older', hidden: true });
  let next = null;
  let polling = false;
  let lastSignature = '';

  if (options && options.status) status.value = options.status;
  const fetchPage = (after) => api('GET', `/v1/deliveries${query(Object.assign({}, filter, { status: status.value, limit: PAGE_SIZE, after }))}`);

  const render = (deliveries, where) => {
    for (const delivery of deliveries) {
      const known = rows.get(delivery.id);
      if (known) {
        known.update(delivery);
        continue;
      }
      const row = deliveryRow(delivery, filter, page, () => refresh(), changedRow);
      rows.set(delivery.id, row);
      if (where === 'top') list.insertBefore(row.details, list.firstChild);
      else list.append(row.details);
    }
    say(message, rows.size ? '' : 'No deliveries yet.');
  };

  // A row that follows its own delivery (after a retry) saw it change: the chart looks again.
  const changedRow = () => {
    if (options && options.onChange) options.onChange();
  };

  const noteChange = (deliveries) => {
    const signature = deliveries.map((d) => `${d.id}:${d.status}:${d.attempts_made}`).join(',');
    if (signature !== lastSignature) {
      lastSignature = signature;
      if (options && options.onChange) options.onChange();
    }
  };

  // Looks again from the newest: pages back (with `after`) until it reaches a delivery already
  // shown, so none made meanwhile is skipped, however many there are; each new one goes in its
  // place (newest first) and the shown ones are brought up to date. "Show older" goes on from
  // where it was. After REFRESH_PAGES pages without reaching a shown one, the list starts over.
  const refresh = async () => {
    if (!rows.size) {
      await reset(true);
      return;
    }
    try {
      const seen = [];
      let cursor = null;
      let reached = false;
      let end = false;
      for (let pages = 0; !reached && !end; pages += 1) {
        if (pages === REFRESH_PAGES) {
          await reset(true);
          return;
        }
        const answer = await fetchPage(cursor);
        if (!alive(page)) return;
        seen.push(...answer.data);
        reached = answer.data.some((d) => rows.has(d.id));
        cursor = answer.next;
        end = !cursor;
      }
      // Rows past the last shown one belong to "Show older", unless the list is complete.
      let last = seen.length - 1;
      if (next) while (last >= 0 && !rows.has(seen[last].id)) last -= 1;
      let previous = null; // the node the next new row goes after (null: the top)
      for (const delivery of seen.slice(0, last + 1)) {
        const known = rows.get(delivery.id);
        if (known) {
          known.update(delivery);
          previous = known.details;
          continue;
        }
        const row = deliveryRow(delivery, filter, page, () => refresh(), changedRow);
        rows.set(delivery.id, row);
        list.insertBefore(row.details, previous ? previous.nextSibling : list.firstChild);
        previous = row.details;
      }
      say(message, rows.size ? '' : 'No deliveries yet.');
      noteChange(seen);
      schedule(seen);
    } catch (error) {
      if (alive(page)) say(message, words(error), 'error');
    }
  };

  const schedule = (deliveries) => {
    const unfinished = deliveries.some((d) => d.status === 'pending' || d.status === 'delivering');
    if (unfinished && !polling) {
      polling = true;
      later(page, POLL_MS, () => {
        polling = false;
        refresh();
      });
    }
  };

  /** Starts the list over from the newest; `notify`: tell onChange when what is shown changed. */
  const reset = async (notify) => {
    rows.clear();
    list.replaceChildren();
    next = null;
    lastSignature = '';
    try {
      const answer = await fetchPage(null);
      if (!alive(page)) return;
      render(answer.data, 'bottom');
      next = answer.next;
      more.hidden = !next;
      if (notify === true) noteChange(answer.data);
      else lastSignature = answer.data.map((d) => `${d.id}:${d.status}:${d.attempts_made}`).join(',');
      schedule(answer.data);
    } catch (error) {
      if (alive(page)) say(message, words(error), 'error');
    }
  };

  status.addEventListener('change', () => reset(false));
  refreshButton.addEventListener('click', () => busy(refreshButton, refresh));
  more.addEventListener('click', () => busy(more, async () => {
    try {
      const answer = await fetchPage(next);
      render(answer.data, 'bottom');
      next = answer.next;
      more.hidden = !next;
    } catch (error) {
      say(message, words(error), 'error');
    }
  }));
  reset(false);
  const element = el('div', {},
    el('div', { class: 'row wrap' }, options && options.hideStatus ? null : [el('label', { for: 'delivery-status', class: 'inline', text: 'Show' }), status], refreshButton),
    list, message, more);
  return { element, refresh };
}

function deliveryRow(delivery, filter, page, refreshList, onChange) {
  const badgeSlot = el('span', { class: 'delivery-status' });
  const attemptsSlot = el('span', { class: 'muted' });
  const nextSlot = el('span', { class: 'muted' });
  const content = el('div', {});
  const retryNote = note();
  const retry = el('button', { type: 'button', class: 'secondary small retry', text: 'Retry now' });
  const details = el('details', { class: 'delivery', 'data-delivery-id': delivery.id },
    el('summary', {},
      badgeSlot,
      el('code', { class: 'event-type', text: delivery.event_type }),
      delivery.test ? badge('test', 'test') : null,
      // Deliveries of several endpoints: say which.
      filter.endpoint_id ? null : el('span', { class: 'muted endpoint-name', title: delivery.endpoint_id, text: endpointName(delivery.endpoint_id) }),
      el('span', { class: 'muted' }, timeEl(delivery.created_at)),
      attemptsSlot,
      nextSlot),
    el('div', { class: 'delivery-body' }, content, el('div', { class: 'row wrap' }, retry, retryNote)));
  let current = delivery;
  let queued = false; // a retry was asked for and has not finished yet
  let watching = 0; // bumped per retry: an older retry's watch stops
  /** Shows `fresh`; with `full` (it came with its attempts) an open row shows those at once. */
  const update = (fresh, full) => {
    const changed = fresh.status !== current.status || fresh.attempts_made !== current.attempts_made;
    current = fresh;
    details.dataset.status = fresh.status;
    badgeSlot.replaceChildren(badge(fresh.status));
    attemptsSlot.textContent = `${fresh.attempts_made} ${fresh.attempts_made === 1 ? 'attempt' : 'attempts'}`;
    nextSlot.textContent = fresh.status === 'pending' && fresh.next_attempt_at ? `next attempt ${relativeTime(fresh.next_attempt_at)}` : '';
    nextSlot.title = fresh.next_attempt_at ? formatTime(fresh.next_attempt_at) : '';
    if (queued && (fresh.status === 'succeeded' || fresh.status === 'failed')) {
      queued = false;
      if (fresh.status === 'succeeded') say(retryNote, 'Retried: it succeeded.', 'ok');
      else say(retryNote, 'Retried: it failed again; the attempts below say why.', 'error');
    }
    if (details.open && full) content.replaceChildren(deliveryFacts(fresh, filter));
    else if (details.open && changed) loadAttempts();
    return changed;
  };
  // After a retry this row watches its own delivery until it has finished, whether or not the
  // list's filter or first page still holds it, so it never stays "pending" for good.
  const watch = (deadline, watchId) => {
    later(page, POLL_MS, async () => {
      if (watchId !== watching) return;
      try {
        const fresh = await api('GET', `/v1/deliveries/${encodeURIComponent(current.id)}`);
        if (!alive(page) || watchId !== watching) return;
        if (update(fresh, true)) onChange();
        if (fresh.status === 'succeeded' || fresh.status === 'failed') return;
      } catch (error) {
        if (error.status === 401 || !alive(page)) return;
        if (error.status === 404) {
          say(retryNote, words(error), 'error');
          return;
        }
      }
      if (Date.now() < deadline) watch(deadline, watchId);
      else if (queued) say(retryNote, 'Still not finished; press Refresh to look again.', 'error');
    });
  };
  const loadAttempts = async () => {
    try {
      const full = await api('GET', `/v1/deliveries/${encodeURIComponent(current.id)}`);
      content.replaceChildren(deliveryFacts(full, filter));
    } catch (error) {
      content.replaceChildren(el('p', { class: 'note error', text: words(error) }));
    }
  };
  retry.addEventListener('click', () => busy(retry, async () => {
    try {
      const fresh = await api('POST', `/v1/deliveries/${encodeURIComponent(current.id)}/retry`);
      say(retryNote, 'Queued: it goes out again now.', 'ok');
      update(fresh);
      queued = true;
      watching += 1;
      watch(Date.now() + RETRY_WATCH_MS, watching);
      refreshList();
    } catch (error) {
      say(retryNote, words(error), 'error');
    }
  }));
  details.addEventListener('toggle', () => {
    if (details.open) loadAttempts();
  });
  update(delivery);
  return { details, update };
}

/** What a delivery is, and its attempts: time, outcome, duration, error, response excerpt. */
function deliveryFacts(delivery, filter) {
  const attempts = delivery.attempts || [];
  return el('div', {},
    el('dl', { class: 'facts' },
      el('dt', { text: 'Delivery' }), el('dd', {}, el('code', { text: delivery.id })),
      el('dt', { text: 'Event' }), el('dd', {}, filter.event_id
        ? el('code', { text: delivery.event_id })
        : link(eventHref(delivery.event_id, delivery.workspace_id), delivery.event_id, { title: 'This event and all its deliveries' })),
      filter.endpoint_id ? null : [el('dt', { text: 'Endpoint' }), el('dd', {}, link(endpointHref(delivery.endpoint_id), endpointName(delivery.endpoint_id), { title: delivery.endpoint_id }))],
    ),
    attempts.length
      ? el('ol', { class: 'attempts' }, attempts.map((attempt, index) => attemptItem(attempt, attempts[index + 1], delivery)))
      : el('p', { class: 'muted', text: 'No attempt yet.' }));
}

/** How long after a 401/403 the next attempt may start and still be the at-once secret switch. */
const SWITCH_GAP_MS = 2000;

/** Words for an error class that came before or instead of an HTTP status. */
const ERROR_CLASS_WORDS = {
  timeout: 'timed out',
  connect: 'could not connect',
  dns: 'name not found',
  tls: 'TLS failed',
  redirect: 'redirect (not followed)',
  blocked_address: 'address not allowed',
};

/**
 * One attempt: when, outcome, how long; why it failed in words; and, on demand, the request as
 * sent (headers without secrets, body bytes) and the response.
 */
function attemptItem(attempt, following, delivery) {
  const ok = attempt.status_code >= 200 && attempt.status_code < 300 && !attempt.error_class;
  const outcome = !attempt.error_class || attempt.error_class === 'http_status'
    ? `HTTP ${attempt.status_code}`
    : `${ERROR_CLASS_WORDS[attempt.error_class] || attempt.error_class.replace('_', ' ')}${attempt.status_code ? ` (HTTP ${attempt.status_code})` : ''}`;
  const explanation = attemptExplanation(attempt, following);
  const requestBox = el('div', { class: 'request-box' });
  const show = el('button', { type: 'button', class: 'link show-request', text: 'Show the request sent' });
  show.addEventListener('click', () => busy(show, async () => {
    if (requestBox.childElementCount) {
      requestBox.replaceChildren();
      show.textContent = 'Show the request sent';
      return;
    }
    try {
      const sent = await api('GET', `/v1/deliveries/${encodeURIComponent(delivery.id)}/attempts/${attempt.number}/request`);
      requestBox.replaceChildren(requestView(sent));
      show.textContent = 'Hide the request';
    } catch (error) {
      requestBox.replaceChildren(el('p', { class: 'note error', text: words(error) }));
    }
  }));
  let response;
  if (attempt.status_code == null) {
    response = el('p', { class: 'muted response-none', text: 'No response: the request got no HTTP answer (see the error above).' });
  } else if (attempt.response_excerpt) {
    response = [el('p', { class: 'muted small', text: `Response: HTTP ${attempt.status_code}, body (first bytes):` }),
      el('pre', { class: 'excerpt', text: attempt.response_excerpt })];
  } else {
    response = el('p', { class: 'muted', text: `Response: HTTP ${attempt.status_code} with an empty body.` });
  }
  return el('li', { class: 'attempt', 'data-attempt': attempt.number },
    el('div', { class: 'row wrap' },
      el('strong', { text: `Attempt ${attempt.number}` }),
      badge(ok ? 'succeeded' : 'failed', outcome),
      el('span', { class: 'muted' }, timeEl(attempt.started_at)),
      el('span', { class: 'muted', text: `${attempt.duration_ms} ms` })),
    attempt.error ? el('p', { class: 'error attempt-error', text: tenantText(attempt.error) }) : null,
    explanation ? el('p', { class: 'explain', text: explanation }) : null,
    response,
    show, requestBox);
}

/** Why an attempt went as it did, when the outcome alone does not say it. */
function attemptExplanation(attempt, following) {
  const status = attempt.status_code;
  if (status === 401 || status === 403) {
    const end = new Date(attempt.started_at).getTime() + attempt.duration_ms;
    const next = following ? new Date(following.started_at).getTime() : null;
    if (next !== null && next - end < SWITCH_GAP_MS) {
      return `The receiver refused the signature (${status}). While a rotated secret's overlap lasts both secrets are live, so the next attempt went at once signed with the other one; that used no scheduled retry.`;
    }
    return `The receiver refused the request (${status}): check that it verifies with this endpoint's current secret.`;
  }
  if (status === 413) return 'The receiver found the body too large (413): events are up to 256 KiB; raise its body limit (Express: express.raw({ limit: \'512kb\' })).';
  if (status === 410) return 'The receiver answered 410 Gone: the delivery failed at once and the endpoint was disabled.';
  if (status === 429 || status === 503) return `The receiver was overloaded or down (${status}). Had it sent Retry-After, the next attempt would wait as long as it asked (at least the scheduled delay, at most twice it).`;
  return null;
}

/** The request an attempt sent: method and URL, headers (no secret), the body bytes. */
function requestView(sent) {
  return el('div', { class: 'request' },
    el('p', { class: 'muted small' }, el('code', { text: `${sent.method} ${sent.url}` })),
    el('table', { class: 'headers-table' },
      el('tbody', {}, sent.headers.map((header) => el('tr', {},
        el('th', { scope: 'row' }, el('code', { text: header.name })),
        el('td', {}, el('code', { text: header.value })))))),
    el('p', { class: 'muted small', text: `Body, ${sent.body_bytes} bytes exactly as sent (every attempt sends the same bytes):` }),
    el('pre', { class: 'excerpt body-sent', text: sent.body }),
    el('p', { class: 'muted small', text: `Signatures: ${sent.signatures}. Extra headers' values are masked; the secret is never shown.` }));
}

// ---------------------------------------------------------------------------------------------
// Deliveries across endpoints: "everything that failed in the last hour"

/** Endpoint URLs by id, learnt from the lists shown, to name an endpoint in a delivery row. */
const endpointUrls = new Map();

function endpointName(id) {
  const url = endpointUrls.get(id);
  if (!url) return id;
  try {
    const parsed = new URL(url);
    return parsed.host + parsed.pathname;
  } catch (error) {
    return url;
  }
}

const PERIODS = [['1', 'last hour'], ['24', 'last 24 hours'], ['168', 'last 7 days'], ['', 'any time']];

async function deliveriesPage() {
  const page = newPage();
  const admin = state.me.role === 'admin';
  const [types, endpoints] = await Promise.all([
    eventTypes(),
    api('GET', `/v1/endpoints${query({ limit: 500 })}`),
  ]);
  if (!alive(page)) return;
  for (const endpoint of endpoints.data) endpointUrls.set(endpoint.id, endpoint.url);
  const search = el('input', { type: 'search', id: 'delivery-search', name: 'search', autocomplete: 'off', spellcheck: 'false', placeholder: 'evt_… or dlv_…', 'aria-describedby': 'error-search' });
  const endpointSelect = el('select', { id: 'filter-endpoint', name: 'endpoint_id', 'aria-label': 'Endpoint' },
    el('option', { value: '', text: 'all endpoints' }),
    endpoints.data.map((endpoint) => el('option', { value: endpoint.id, text: admin ? `${endpointName(endpoint.id)} (${endpoint.workspace_id})` : endpointName(endpoint.id) })));
  const typeSelect = el('select', { id: 'filter-type', name: 'type', 'aria-label': 'Event type' },
    el('option', { value: '', text: 'all event types' }), types.map((type) => el('option', { value: type.type, text: type.type })));
  const period = el('select', { id: 'filter-period', name: 'period', 'aria-label': 'Period' },
    PERIODS.map(([value, text]) => el('option', { value, text, selected: value === '24' })));
  const workspace = admin ? el('input', { type: 'text', id: 'filter-workspace-deliveries', name: 'workspace_id', autocomplete: 'off', placeholder: 'all workspaces' }) : null;
  const status = el('select', { id: 'filter-status', name: 'status', 'aria-label': 'Status' },
    el('option', { value: '', text: 'all statuses' }), STATUSES.map((name) => el('option', { value: name, text: name })));
  const form = clearOnInput(el('form', { class: 'card filters', id: 'deliveries-filter', novalidate: true },
    el('div', { class: 'row between wrap' }, el('h1', { text: 'Deliveries' })),
    el('div', { class: 'filter-grid' },
      el('div', {}, el('label', { for: 'delivery-search', text: 'Event or delivery id' }), search, fieldError('search')),
      el('div', {}, el('label', { for: 'filter-status', text: 'Status' }), status),
      el('div', {}, el('label', { for: 'filter-endpoint', text: 'Endpoint' }), endpointSelect),
      el('div', {}, el('label', { for: 'filter-type', text: 'Event type' }), typeSelect),
      el('div', {}, el('label', { for: 'filter-period', text: 'Created' }), period),
      admin ? el('div', {}, el('label', { for: 'filter-workspace-deliveries', text: 'Workspace' }), workspace, fieldError('workspace_id')) : null),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('div', { class: 'row wrap' }, el('button', { type: 'submit', text: 'Show' }))));
  const results = el('section', { class: 'card', id: 'deliveries-section' });
  page.main.append(form, results);
  const show = async () => {
    clearFormErrors(form);
    const id = search.value.trim();
    if (id.startsWith('dlv_')) {
      // One delivery by its id: shown open, with its attempts.
      try {
        const delivery = await api('GET', `/v1/deliveries/${encodeURIComponent(id)}`);
        if (!alive(page)) return;
        const row = deliveryRow(delivery, {}, page, () => {}, () => {});
        row.details.open = true;
        results.replaceChildren(el('h2', { text: `Delivery ${id}` }), el('div', { class: 'deliveries', id: 'deliveries' }, row.details));
      } catch (error) {
        if (error.status === 404) showFormError(form, new ApiError(404, 'not_found', `No delivery ${id}.`, 'search'));
        else showFormError(form, error);
      }
      return;
    }
    const filter = {
      workspace_id: workspace ? workspace.value.trim() || null : null,
      endpoint_id: endpointSelect.value || null,
      type: typeSelect.value || null,
      event_id: id || null,
      since: period.value ? new Date(Date.now() - Number(period.value) * 3600 * 1000).toISOString() : null,
    };
    const list = deliveryList(filter, page, { status: status.value, hideStatus: true });
    const what = [status.value || 'all', 'deliveries', filter.endpoint_id ? `to ${endpointName(filter.endpoint_id)}` : null,
      filter.type ? `of ${filter.type}` : null, id ? `of event ${id}` : null,
      filter.workspace_id ? `in workspace ${filter.workspace_id}` : null,
      period.value ? `created in the ${PERIODS.find(([v]) => v === period.value)[1]}` : null].filter(Boolean).join(' ');
    results.replaceChildren(el('h2', { id: 'deliveries-what', text: what[0].toUpperCase() + what.slice(1) }), list.element);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(form.querySelector('button[type=submit]'), show);
  });
  for (const select of [status, endpointSelect, typeSelect, period]) select.addEventListener('change', () => show());
  await show();
}

// ---------------------------------------------------------------------------------------------
// Events

/** How many deliveries are read to show the events' outcomes (one page of the API). */
const OUTCOME_DELIVERIES_MAX = 500;

async function eventsPage() {
  const page = newPage();
  const admin = state.me.role === 'admin';
  const types = await eventTypes();
  if (!alive(page)) return;
  const filter = el('select', { id: 'event-type-filter', name: 'type', 'aria-label': 'Event type' },
    el('option', { value: '', text: 'all types' }), types.map((type) => el('option', { value: type.type, text: type.type })));
  const search = el('input', { type: 'search', id: 'event-search', name: 'id', autocomplete: 'off', spellcheck: 'false', placeholder: 'evt_…', 'aria-label': 'Event id' });
  const workspace = admin ? el('input', { type: 'text', id: 'event-workspace', name: 'workspace_id', autocomplete: 'off', placeholder: 'all workspaces', 'aria-label': 'Workspace' }) : null;
  const form = clearOnInput(el('form', { class: 'filter-grid events-filter', id: 'events-filter', novalidate: true },
    el('div', {}, el('label', { for: 'event-search', text: 'Event id' }), search, fieldError('id')),
    el('div', {}, el('label', { for: 'event-type-filter', text: 'Type' }), filter),
    admin ? el('div', {}, el('label', { for: 'event-workspace', text: 'Workspace' }), workspace, fieldError('workspace_id')) : null,
    el('div', { class: 'filter-submit' }, el('button', { type: 'submit', class: 'secondary', text: 'Show' })),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' })));
  const list = el('ul', { class: 'rows', id: 'events' });
  const message = note();
  const more = el('button', { type: 'button', class: 'secondary', text: 'Show older', hidden: true });
  let next = null;
  const load = async (reset) => {
    if (reset) {
      list.replaceChildren();
      next = null;
    }
    const id = search.value.trim();
    if (id) {
      // One id: its event (in each workspace that has it, for the admin).
      const answer = await api('GET', `/v1/events/${encodeURIComponent(id)}${query({ workspace_id: workspace ? workspace.value.trim() : null })}`)
        .catch((error) => {
          if (error.status === 404) return null;
          throw error;
        });
      if (!alive(page)) return;
      if (answer) list.append(eventRow(answer, outcomeOf(answer.deliveries || []), admin));
      more.hidden = true;
      say(message, answer ? '' : `No event ${id}.`);
      return;
    }
    const answer = await api('GET', `/v1/events${query({ type: filter.value, workspace_id: workspace ? workspace.value.trim() : null, limit: PAGE_SIZE, after: next })}`);
    if (!alive(page)) return;
    // Each event's outcome, from one read of the deliveries made since the oldest event shown.
    const outcomes = new Map();
    if (answer.data.length) {
      const oldest = answer.data[answer.data.length - 1].created_at;
      const deliveries = await api('GET', `/v1/deliveries${query({ since: oldest, type: filter.value, workspace_id: workspace ? workspace.value.trim() : null, limit: OUTCOME_DELIVERIES_MAX })}`)
        .catch(() => ({ data: [], next: null }));
      for (const delivery of deliveries.data) {
        const key = `${delivery.workspace_id}/${delivery.event_id}`;
        if (!outcomes.has(key)) outcomes.set(key, []);
        outcomes.get(key).push(delivery);
      }
      outcomes.complete = !deliveries.next;
    }
    if (!alive(page)) return;
    for (const event of answer.data) {
      const mine = outcomes.get(`${event.workspace_id}/${event.id}`);
      list.append(eventRow(event, mine ? outcomeOf(mine) : outcomes.complete ? outcomeOf([]) : null, admin));
    }
    next = answer.next;
    more.hidden = !next;
    say(message, list.children.length ? '' : filter.value ? 'No events match.' : 'No events yet.');
  };
  const run = (reset) => load(reset).catch((error) => showFormError(form, error));
  filter.addEventListener('change', () => run(true));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearFormErrors(form);
    busy(form.querySelector('button[type=submit]'), () => run(true));
  });
  more.addEventListener('click', () => busy(more, () => run(false)));
  page.main.append(el('section', { class: 'card' },
    el('h1', { text: 'Events' }), form, list, message, more));
  await load(true);
}

/** An event's deliveries summed up: a badge kind and words (`2 succeeded · 1 failed`). */
function outcomeOf(deliveries) {
  if (!deliveries.length) return { kind: 'off', text: 'no endpoint' };
  const counts = {};
  for (const delivery of deliveries) counts[delivery.status] = (counts[delivery.status] || 0) + 1;
  const text = STATUSES.filter((name) => counts[name]).map((name) => `${counts[name]} ${name}`).join(' · ');
  const kind = counts.failed ? 'failed' : counts.pending || counts.delivering ? 'pending' : 'succeeded';
  return { kind, text };
}

function eventRow(event, outcome, admin) {
  return el('li', { 'data-event-id': event.id },
    link(eventHref(event.id, event.workspace_id), event.type, { class: 'event-type' }),
    event.test ? badge('test', 'test') : null,
    outcome ? badge(outcome.kind, outcome.text) : el('span', { class: 'muted', text: 'outcome: see the event' }),
    el('span', { class: 'muted' }, timeEl(event.created_at)),
    el('code', { class: 'muted', text: event.id }),
    admin ? el('span', { class: 'muted', text: event.workspace_id }) : null);
}

async function eventPage(id, workspaceId) {
  const page = newPage();
  const event = await api('GET', `/v1/events/${encodeURIComponent(id)}${query({ workspace_id: workspaceId })}`);
  if (!alive(page)) return;
  const deliveries = deliveryList({ event_id: event.id, workspace_id: event.workspace_id }, page);
  page.main.append(
    el('section', { class: 'card', id: 'event' },
      el('p', {}, link('#/events', '← Events')),
      el('div', { class: 'row between' }, el('h1', { text: event.type }), event.test ? badge('test', 'test event') : null),
      el('dl', { class: 'facts' },
        el('dt', { text: 'Id' }), el('dd', {}, el('code', { text: event.id })),
        el('dt', { text: 'Created' }), el('dd', {}, timeEl(event.created_at)),
        state.me.role === 'admin' ? [el('dt', { text: 'Workspace' }), el('dd', { text: event.workspace_id })] : null),
      el('h2', { text: 'Data' }),
      el('p', { class: 'muted small', text: 'Laid out for reading. The body bytes exactly as sent, with the headers, are under each attempt: "Show the request sent".' }),
      el('pre', { class: 'excerpt', text: JSON.stringify(event.data, null, 2) })),
    el('section', { class: 'card' }, el('h2', { text: 'Deliveries of this event' }), deliveries.element),
  );
}

// ---------------------------------------------------------------------------------------------
// Portal links (admin): a single-use link that signs a customer in as their workspace

const LINK_LIFETIMES = [['15m', '15 minutes'], ['1h', '1 hour'], ['24h', '24 hours']];

async function portalPage() {
  const page = newPage();
  const result = el('div', { id: 'portal-result' });
  const tokens = el('ul', { class: 'rows', id: 'tokens' });
  const tokensNote = note();
  const form = clearOnInput(el('form', { class: 'stack', id: 'portal-form', novalidate: true },
    el('label', { for: 'portal-workspace', text: 'Workspace' }),
    el('input', { id: 'portal-workspace', name: 'workspace_id', type: 'text', autocomplete: 'off', placeholder: 'acme' }),
    fieldError('workspace_id'),
    el('label', { for: 'portal-expires', text: 'The link works once, within' }),
    el('select', { id: 'portal-expires', name: 'expires_in' },
      LINK_LIFETIMES.map(([value, text]) => el('option', { value, text }))),
    fieldError('expires_in'),
    el('p', { class: 'note error', 'data-error-for': '_form', role: 'alert' }),
    el('div', { class: 'row wrap' },
      el('button', { type: 'submit', text: 'Create link' }),
      el('button', { type: 'button', class: 'secondary', id: 'list-tokens', text: 'List tokens' })),
  ));
  const workspace = () => form.elements.workspace_id.value.trim();
  const workspacePath = () => `/v1/workspaces/${encodeURIComponent(workspace())}`;
  const tokensPath = () => `${workspacePath()}/tokens`;
  const listTokens = async () => {
    clearFormErrors(form);
    if (!workspace()) {
      showFormError(form, new ApiError(0, 'missing', 'Enter a workspace.', 'workspace_id'));
      return;
    }
    try {
      const answer = await api('GET', `${tokensPath()}?limit=100`);
      if (!alive(page)) return;
      tokens.replaceChildren(...answer.data.map((token) => {
        const revoke = el('button', { type: 'button', class: 'danger small', text: 'Revoke' });
        const item = el('li', { 'data-token-id': token.id }, el('code', { text: token.id }), el('span', { text: token.description || '' }),
          el('span', { class: 'muted token-expires' }, token.expires_at ? ['expires ', timeEl(token.expires_at)] : 'does not expire'),
          el('span', { class: 'muted' }, 'last used ', token.last_used_at ? timeEl(token.last_used_at) : 'never'), revoke);
        revoke.addEventListener('click', async () => {
          if (!(await confirmDialog(`Revoke token ${token.id}? Whoever signed in with it is signed out at their next step.`, 'Revoke'))) return;
          try {
            await api('DELETE', `${tokensPath()}/${encodeURIComponent(token.id)}`);
            item.remove();
          } catch (error) {
            say(tokensNote, words(error), 'error');
          }
        });
        return item;
      }));
      say(tokensNote, answer.data.length ? '' : `No tokens for ${workspace()}.`);
    } catch (error) {
      showFormError(form, error);
    }
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    if (!workspace()) {
      showFormError(form, new ApiError(0, 'missing', 'Enter a workspace.', 'workspace_id'));
      return;
    }
    try {
      const body = { expires_in: form.elements.expires_in.value };
      const answer = await busy(form.querySelector('button[type=submit]'), () => api('POST', `${workspacePath()}/portal-links`, body));
      if (!alive(page)) return;
      const url = new URL(answer.url, location.origin).href;
      result.replaceChildren(
        secretBox(`Link that opens this dashboard signed in as ${answer.workspace_id}:`, url, 'portal-link'),
        el('p', { id: 'portal-expiry' },
          'It works once, until ', timeEl(answer.expires_at),
          ', and then signs in for 12 hours (a "portal session" among the tokens below, which you can revoke). Send it to that person only; once opened or expired it opens nothing.'));
      listTokens();
    } catch (error) {
      showFormError(form, error);
    }
  });
  $('#list-tokens', form).addEventListener('click', listTokens);
  page.main.append(el('section', { class: 'card' },
    el('h1', { text: 'Portal links' }),
    el('p', { class: 'muted', text: 'A portal link signs a customer in as their workspace, which sees and changes only its own endpoints, events and deliveries: show them this page as their webhook settings. The link carries a code that works once, never a token.' }),
    form, result, tokens, tokensNote));
}

// ---------------------------------------------------------------------------------------------
// Confirmation dialog

function confirmDialog(text, action) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = action;
  return new Promise((resolve) => {
    const finish = (answer) => {
      $('#confirm-ok').removeEventListener('click', ok);
      $('#confirm-cancel').removeEventListener('click', cancel);
      dialog.removeEventListener('cancel', cancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const ok = () => finish(true);
    const cancel = () => finish(false);
    $('#confirm-ok').addEventListener('click', ok);
    $('#confirm-cancel').addEventListener('click', cancel);
    dialog.addEventListener('cancel', cancel);
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

// ---------------------------------------------------------------------------------------------

$('#sign-out').addEventListener('click', () => signOut('Signed out.', 'ok'));
window.addEventListener('hashchange', () => {
  const link = takeLinkFragment();
  if (link) {
    // Another identity: forget the previous one and what was known about it.
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.me = null;
    state.eventTypes = null;
    state.workspaceFilter = '';
    state.link = link;
  }
  route();
});
route();
