// The progress sheets of the seed article as a dashboard: daily activity against target,
// the weekly bottleneck review, and the monthly landing and factor analysis, each drilling
// down org → team → rep. Every number comes from the public REST API (/v1/...).

import { Api, AuthError, forgetToken, getToken, setToken } from './api.js';
import { targetBars, trendChart } from './charts.js';
import * as F from './format.js';
import { SOURCES, STRINGS, initialLanguage, rememberLanguage } from './i18n.js';

const VIEWS = ['daily', 'weekly', 'monthly'];
const PHASES = ['launch', 'growth', 'mature'];
const TIERS = ['behavioral', 'tactical', 'strategic', 'efficiency'];
const PHASE_KEY = 'iskpi.phase';
const STALE_HOURS = 24;
const REFRESH_MS = 5 * 60 * 1000;
// While a sync runs (the demo's first one, say), its pages land every moment: refresh often.
const SYNCING_REFRESH_MS = 3000;
const SYNCING_FOR_AT_MOST_MS = 6 * 3.6e6; // a run "running" for longer was killed
let syncingTimer = null;

// The daily sheet: activity volume (pro-rated targets) and its efficiency.
const DAILY_KPIS = [
  'calls',
  'effective_contacts',
  'emails_sent',
  'connect_rate',
  'effective_contact_rate',
  'avg_talk_seconds',
  'email_reply_rate',
  'follow_up_rate',
];
// The weekly sheet: calls → effective contacts → meetings → deals, and the rates between.
const FUNNEL_COUNTS = ['calls', 'effective_contacts', 'meetings_set', 'deals_created'];
const WEEKLY_KPIS = [
  'calls',
  'connect_rate',
  'effective_contacts',
  'effective_contact_rate',
  'meetings_set',
  'meeting_conversion_rate',
  'deals_created',
];
// The monthly member table, after the phase's priority KPIs.
const MEMBER_KPIS = [
  'calls',
  'connect_rate',
  'effective_contacts',
  'meetings_set',
  'meeting_conversion_rate',
  'deals_created',
  'won_count',
  'won_amount',
  'win_rate',
];

const state = {
  lang: initialLanguage(),
  view: 'daily',
  scope: 'org',
  id: null,
  day: null,
  week: null,
  month: null,
  phase: PHASES.includes(localStorage.getItem(PHASE_KEY)) ? localStorage.getItem(PHASE_KEY) : 'growth',
};

let api = null;
let ctx = null; // {today, timezone, catalog: Map, keys: [], teams: [], reps: Map}
let renderCount = 0;

const t = () => STRINGS[state.lang];
const $ = (selector) => document.querySelector(selector);

// --- DOM -------------------------------------------------------------------------------------

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') {
      for (const [name, item] of Object.entries(value)) {
        if (item !== null && item !== undefined) node.dataset[name] = String(item);
      }
    } else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', { text: title }), ...children);
}

function raw(value) {
  return value === null || value === undefined ? '' : String(value);
}

// --- the catalog's words ------------------------------------------------------------------------

function entry(key) {
  return ctx.catalog.get(key);
}

function kpiName(key) {
  const spec = entry(key);
  return spec ? spec.names[state.lang] || spec.names.en : key;
}

function unitOf(key) {
  return entry(key)?.unit || 'count';
}

function isCount(key) {
  return ['count', 'amount'].includes(unitOf(key));
}

function fmt(key, value) {
  return F.formatValue(value, unitOf(key), t());
}

function bandText(key, band) {
  if (!band || (band.low === null && band.high === null)) return '';
  const low = band.low === null ? '' : fmt(key, band.low);
  const high = band.high === null ? '' : fmt(key, band.high);
  if (band.low === null) return `\u2264 ${high}`;
  if (band.high === null) return `\u2265 ${low}`;
  return `${low}\u2013${high}`;
}

/** The cell colour of a row's band status: a ceiling-only band makes "above" the bad side. */
function statusClass(row) {
  if (!row || !row.status) return 'st-none';
  if (row.status === 'within') return 'st-good';
  if (row.status === 'above') return row.band && row.band.low === null ? 'st-bad' : 'st-high';
  return 'st-bad';
}

function statusTitle(key, row) {
  if (!row || !row.status) return null;
  return `${t()[`status_${row.status}`]} (${t().band} ${bandText(key, row.band)})`;
}

function shareClass(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return 'tone-none';
  if (share >= 1) return 'tone-good';
  if (share >= 0.8) return 'tone-warn';
  return 'tone-bad';
}

function progressBar(share) {
  const outer = h('span', { class: 'bar' });
  const inner = h('span', { class: `fill ${shareClass(share)}` });
  inner.style.width = `${Math.min(100, Math.max(0, (share || 0) * 100))}%`;
  outer.append(inner);
  return outer;
}

// --- where we are: view, scope, id, period (in the URL's hash) -----------------------------------

function readHash() {
  const [path, query] = window.location.hash.replace(/^#\/?/, '').split('?');
  const params = new URLSearchParams(query || '');
  state.view = VIEWS.includes(path) ? path : 'daily';
  const scope = params.get('scope');
  state.scope = scope === 'team' || scope === 'rep' ? scope : 'org';
  state.id = state.scope === 'org' ? null : params.get('id');
  if (state.scope !== 'org' && !state.id) state.scope = 'org';
  const valid = (value, pattern) => (value && pattern.test(value) ? value : null);
  state.day = valid(params.get('day'), /^\d{4}-\d{2}-\d{2}$/);
  state.week = valid(params.get('week'), /^\d{4}-\d{2}-\d{2}$/);
  state.month = valid(params.get('month'), /^\d{4}-\d{2}$/);
  if (state.week) state.week = F.mondayOf(state.week);
}

function hashFor(changes = {}) {
  const next = { ...state, ...changes };
  const params = new URLSearchParams();
  if (next.scope !== 'org') {
    params.set('scope', next.scope);
    params.set('id', next.id);
  }
  for (const key of ['day', 'week', 'month']) if (next[key]) params.set(key, next[key]);
  const query = params.toString();
  return `#/${next.view}${query ? `?${query}` : ''}`;
}

function go(changes) {
  const target = hashFor(changes);
  if (window.location.hash === target) render();
  else window.location.hash = target;
}

// --- the organization: teams, and reps with their team ----------------------------------------

async function loadContext() {
  const [catalog, forecast] = await Promise.all([
    api.get('/v1/kpis/catalog'),
    api.get('/v1/forecast', { kpi: 'calls' }),
  ]);
  const today = forecast.meta.as_of;
  const month = F.monthOf(today);
  const [teamRows, repRows] = await Promise.all([
    api.kpis({ kpi: 'calls', grain: 'month', scope: 'team', from: F.firstOfMonth(month), to: today }),
    // A rep's team: the team their activity of the last three months counts under.
    api.kpis({
      kpi: 'calls,emails_sent,meetings_set',
      grain: 'month',
      scope: 'rep',
      by: 'team',
      from: F.firstOfMonth(F.addMonths(month, -2)),
      to: today,
    }),
  ]);
  const teams = [];
  for (const row of teamRows) {
    if (!teams.some((team) => team.id === row.scope_id)) teams.push({ id: row.scope_id, name: row.scope_name });
  }
  const reps = new Map();
  for (const row of repRows) {
    if (!reps.has(row.scope_id)) reps.set(row.scope_id, { id: row.scope_id, name: row.scope_name, team: null });
    if (row.value > 0 && row.by_value) reps.get(row.scope_id).team = row.by_value;
  }
  ctx = {
    today,
    timezone: forecast.meta.timezone,
    catalog: new Map(catalog.data.map((item) => [item.key, item])),
    keys: catalog.data.map((item) => item.key),
    teams,
    reps,
  };
}

function nameOf(scope, id) {
  if (scope === 'org') return t().org;
  if (scope === 'team') return ctx.teams.find((team) => team.id === id)?.name || id;
  return ctx.reps.get(id)?.name || id;
}

/** The members one level down: the org's teams, a team's reps; a rep has none. */
function membersOf(scope, id) {
  if (scope === 'org') return { scope: 'team', ids: ctx.teams.map((team) => team.id) };
  if (scope === 'team') {
    return { scope: 'rep', ids: [...ctx.reps.values()].filter((rep) => rep.team === id).map((rep) => rep.id) };
  }
  return null;
}

function repsWithTeam() {
  return [...ctx.reps.values()].filter((rep) => rep.team !== null).map((rep) => rep.id);
}

function selfParams() {
  return state.scope === 'org' ? { scope: 'org' } : { scope: state.scope, id: state.id };
}

function index(rows) {
  const out = new Map();
  for (const row of rows) out.set(`${row.scope_id}|${row.kpi}`, row);
  return out;
}

function selfId() {
  return state.scope === 'org' ? 'org' : state.id;
}

// --- business days, from the landing forecast's calendar ---------------------------------------

async function elapsedOn(day) {
  const body = await api.get('/v1/forecast', { kpi: 'calls', as_of: day });
  const row = body.data[0];
  return { month: F.monthOf(day), elapsed: row.business_days_elapsed, days: row.business_days };
}

function businessDaysBetween(before, through) {
  // (before, through]: within one month, or across one month boundary.
  if (before.month === through.month) return through.elapsed - before.elapsed;
  return before.days - before.elapsed + through.elapsed;
}

async function businessCalendar(day) {
  const monday = F.mondayOf(day);
  const [beforeWeek, dayBefore, current, sunday] = await Promise.all([
    elapsedOn(F.addDays(monday, -1)),
    elapsedOn(F.addDays(day, -1)),
    elapsedOn(day),
    elapsedOn(F.addDays(monday, 6)),
  ]);
  return {
    monthDays: current.days,
    monthElapsed: current.elapsed,
    weekDays: businessDaysBetween(beforeWeek, sunday),
    weekElapsed: businessDaysBetween(beforeWeek, current),
    isBusinessDay: businessDaysBetween(dayBefore, current) === 1,
  };
}

/** Pro-rated targets of a count KPI: for the day, the week, and the week so far. */
function countTargets(dayRow, weekRow, monthRow, cal) {
  let day = null;
  if (dayRow && dayRow.target !== null) day = dayRow.target;
  else if (!cal.isBusinessDay) day = null;
  else if (weekRow && weekRow.target !== null && cal.weekDays) day = weekRow.target / cal.weekDays;
  else if (monthRow && monthRow.target !== null && cal.monthDays) day = monthRow.target / cal.monthDays;
  let week = null;
  if (weekRow && weekRow.target !== null) week = weekRow.target;
  else if (monthRow && monthRow.target !== null && cal.monthDays) week = (monthRow.target * cal.weekDays) / cal.monthDays;
  const weekToDate = week !== null && cal.weekDays ? (week * cal.weekElapsed) / cal.weekDays : null;
  return { day, week, weekToDate };
}

function rateTarget(...rows) {
  for (const row of rows) if (row && row.target !== null) return row.target;
  return null;
}

function share(value, target) {
  if (value === null || value === undefined || target === null || target === undefined || target === 0) return null;
  return value / target;
}

// --- shell: header, language, freshness, breadcrumbs ------------------------------------------

function applyLanguage() {
  document.documentElement.lang = state.lang;
  document.title = `iskpi \u2014 ${t().title}`;
  $('#title').textContent = t().title;
  for (const button of document.querySelectorAll('#lang button')) {
    button.setAttribute('aria-pressed', String(button.dataset.lang === state.lang));
  }
  for (const tab of document.querySelectorAll('#views a')) {
    tab.textContent = t()[tab.dataset.view];
    tab.setAttribute('aria-current', tab.dataset.view === state.view ? 'page' : 'false');
    tab.href = hashFor({ view: tab.dataset.view });
  }
  $('#sign-out').textContent = t().signOut;
  $('#refresh').title = t().refresh;
  $('#refresh').setAttribute('aria-label', t().refresh);
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(lang);
  applyLanguage();
  if (api && ctx) render();
  else if (!getToken()) showLogin();
}

async function renderFreshness() {
  const box = $('#freshness');
  let health;
  let runs = [];
  try {
    health = await (await fetch('/healthz', { headers: { Accept: 'application/json' } })).json();
    runs = (await api.get('/v1/sync/runs', { limit: 50 })).data;
  } catch (error) {
    if (error instanceof AuthError) throw error;
    box.replaceChildren(h('span', { class: 'stale', text: `${t().freshness}: ${error.message}` }));
    return;
  }
  const last = health.last_successful_sync || {};
  const sources = [...new Set([...Object.keys(last), ...runs.map((run) => run.source)])].sort();
  const items = [];
  const stale = [];
  let anySyncing = false;
  for (const source of sources) {
    const at = last[source];
    const hours = at ? (Date.now() - Date.parse(at)) / 3.6e6 : null;
    const latest = runs.find((run) => run.source === source);
    const syncing =
      !!latest && latest.status === 'running' && Date.now() - Date.parse(latest.started_at) < SYNCING_FOR_AT_MOST_MS;
    anySyncing = anySyncing || syncing;
    const isStale = !syncing && (hours === null || hours > STALE_HOURS);
    if (isStale) stale.push(SOURCES[source] || source);
    items.push(
      h(
        'li',
        {
          class: isStale ? 'stale' : 'fresh',
          dataset: { source, lastSync: at || '', stale: String(isStale), syncing: String(syncing) },
        },
        h('strong', { text: SOURCES[source] || source }),
        ' ',
        at
          ? h('time', { datetime: at, title: at }, `${t().lastSync} ${at.slice(0, 16).replace('T', ' ')} UTC (${t().ago(hours)})`)
          : syncing
            ? ''
            : t().neverSynced,
        syncing
          ? h('span', { class: 'run-status syncing', text: ` \u00b7 ${t().syncing}` })
          : latest && latest.status !== 'ok'
            ? h('span', { class: 'run-status', text: ` \u00b7 ${t().lastRun}: ${latest.status}` })
            : null,
      ),
    );
  }
  if (anySyncing && !syncingTimer) {
    // The numbers grow as the sync's pages commit: show them until it ends.
    syncingTimer = window.setTimeout(() => {
      syncingTimer = null;
      refresh();
    }, SYNCING_REFRESH_MS);
  }
  const children = [
    h('span', { class: 'label', text: `${t().freshness}:` }),
    h('ul', {}, items.length ? items : h('li', { class: 'stale', text: t().neverSynced })),
    h('span', { class: 'tz', text: `${t().timezone}: ${ctx.timezone}` }),
  ];
  if (stale.length || !items.length) {
    children.push(
      h('p', { class: 'warning', role: 'alert', id: 'stale-warning' }, `\u26a0 ${t().staleWarning(stale.join(', ') || '\u2014')}`),
    );
  }
  box.replaceChildren(...children);
}

function breadcrumbs() {
  const crumbs = [{ scope: 'org', id: null }];
  if (state.scope === 'team') crumbs.push({ scope: 'team', id: state.id });
  if (state.scope === 'rep') {
    const team = ctx.reps.get(state.id)?.team;
    if (team) crumbs.push({ scope: 'team', id: team });
    crumbs.push({ scope: 'rep', id: state.id });
  }
  const nav = h('nav', { class: 'breadcrumbs', 'aria-label': 'breadcrumbs' });
  crumbs.forEach((crumb, i) => {
    if (i) nav.append(h('span', { class: 'sep', text: '\u203a' }));
    const label = nameOf(crumb.scope, crumb.id);
    const last = i === crumbs.length - 1;
    nav.append(
      last
        ? h('span', { 'aria-current': 'location', dataset: { scope: crumb.scope } }, label)
        : h('a', { href: hashFor({ scope: crumb.scope, id: crumb.id }), dataset: { scope: crumb.scope } }, label),
    );
  });
  return nav;
}

function periodControls(kind, value, label, step) {
  const input =
    kind === 'month'
      ? h('input', { type: 'month', value, 'aria-label': t().month, name: 'period' })
      : h('input', { type: 'date', value, 'aria-label': kind === 'week' ? t().week : t().day, name: 'period' });
  input.addEventListener('change', () => {
    if (!input.value) return;
    go({ [kind]: kind === 'week' ? F.mondayOf(input.value) : input.value });
  });
  return h(
    'div',
    { class: 'period' },
    h('button', { type: 'button', class: 'step', title: t().prev, onclick: () => go({ [kind]: step(-1) }) }, '\u25c0'),
    input,
    h('button', { type: 'button', class: 'step', title: t().next, onclick: () => go({ [kind]: step(1) }) }, '\u25b6'),
    h('span', { class: 'period-label', text: label }),
  );
}

function memberLink(scope, id) {
  return h('a', { href: hashFor({ scope, id }), class: 'drill', title: t().drill, dataset: { scope, id } }, nameOf(scope, id));
}

// --- daily: today's and this week's activity against pro-rated targets -------------------------

function dailyCell(key, row, target, progress, period) {
  const value = row ? row.value : null;
  const cell = h('td', {
    class: `kpi ${statusClass(row)}`,
    title: statusTitle(key, row),
    dataset: { kpi: key, period, value: raw(value), target: raw(target), progress: raw(progress), status: row?.status || '' },
  });
  cell.append(h('span', { class: 'v', text: fmt(key, value) }));
  if (target !== null) cell.append(h('span', { class: 't', text: ` / ${fmt(key, target)}` }));
  if (isCount(key) && target !== null) {
    cell.append(progressBar(progress), h('span', { class: 'p', text: F.formatShare(progress) }));
  } else if (progress !== null) {
    cell.append(h('span', { class: 'p', text: ` ${F.formatShare(progress)}` }));
  }
  return cell;
}

function dailyTable(name, period, entities, rows, cal) {
  const head = h('tr', {}, h('th', { text: t().name }), DAILY_KPIS.map((key) => h('th', { dataset: { kpi: key } }, kpiName(key))));
  const body = h('tbody');
  for (const entity of entities) {
    const cells = DAILY_KPIS.map((key) => {
      const k = `${entity.id}|${key}`;
      const [d, w, m] = [rows.day.get(k), rows.week.get(k), rows.month.get(k)];
      if (isCount(key)) {
        const targets = countTargets(d, w, m, cal);
        if (period === 'day') return dailyCell(key, d, targets.day, share(d?.value, targets.day), 'day');
        return dailyCell(key, w, targets.weekToDate, share(w?.value, targets.weekToDate), 'week');
      }
      const row = period === 'day' ? d : w;
      const target = period === 'day' ? rateTarget(d, w, m) : rateTarget(w, m);
      return dailyCell(key, row, target, share(row?.value, target), period);
    });
    body.append(
      h(
        'tr',
        { class: entity.total ? 'total' : 'member', dataset: { scopeId: entity.id, scope: entity.scope } },
        h('th', { scope: 'row' }, entity.total ? nameOf(entity.scope, entity.id) : memberLink(entity.scope, entity.id)),
        cells,
      ),
    );
  }
  return h('table', { class: 'grid', dataset: { table: name } }, h('thead', {}, head), body);
}

async function renderDaily(main) {
  const day = state.day || ctx.today;
  const monday = F.mondayOf(day);
  const sunday = F.addDays(monday, 6);
  const month = F.monthOf(day);
  const kids = membersOf(state.scope, state.id);
  const kpi = DAILY_KPIS.join(',');
  const fetchRows = (params) =>
    Promise.all([
      api.kpis({ ...params, kpi, grain: 'day', from: day, to: day }),
      api.kpis({ ...params, kpi, grain: 'week', from: monday, to: sunday }),
      api.kpis({ ...params, kpi, grain: 'month', from: F.firstOfMonth(month), to: F.lastOfMonth(month) }),
    ]);
  const [cal, own, members, trend] = await Promise.all([
    businessCalendar(day),
    fetchRows(selfParams()),
    kids ? fetchRows({ scope: kids.scope }) : Promise.resolve([[], [], []]),
    api.kpis({ ...selfParams(), kpi: 'calls,connect_rate', grain: 'day', from: F.firstOfMonth(month), to: day }),
  ]);
  const rows = {
    day: index([...own[0], ...members[0]]),
    week: index([...own[1], ...members[1]]),
    month: index([...own[2], ...members[2]]),
  };
  const entities = [{ scope: state.scope, id: selfId(), total: true }];
  if (kids) for (const id of kids.ids) entities.push({ scope: kids.scope, id, total: false });

  const controls = periodControls('day', day, `${t().businessDayOf(cal.monthElapsed, cal.monthDays)}`, (n) => F.addDays(day, n));
  const isToday = day === ctx.today;
  const notes = [h('p', { class: 'note', text: t().dailyNote })];
  if (!cal.isBusinessDay) notes.unshift(h('p', { class: 'note warn', text: isToday ? t().nonBusinessDay : t().nonBusinessDayOther }));
  const dayLabel = isToday ? `${t().today} (${day})` : `${t().day} ${day}`;
  const weekLabel = `${isToday ? t().thisWeek : t().week} (${monday} \u2013 ${sunday}, ${cal.weekElapsed}/${cal.weekDays} ${t().businessDays})`;

  const selfKey = `${selfId()}|calls`;
  const callTarget = countTargets(rows.day.get(selfKey), rows.week.get(selfKey), rows.month.get(selfKey), cal).day;
  const byDay = new Map();
  for (const row of trend) {
    if (!byDay.has(row.period_start)) byDay.set(row.period_start, { day: row.period_start, calls: 0, rate: null });
    if (row.kpi === 'calls') byDay.get(row.period_start).calls = row.value;
    if (row.kpi === 'connect_rate') byDay.get(row.period_start).rate = row.value;
  }
  const points = [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : 1));
  main.replaceChildren(
    h('h1', { class: 'view-title', text: t().dailyHeading(day) }),
    controls,
    section(dayLabel, dailyTable('daily-day', 'day', entities, rows, cal)),
    section(weekLabel, dailyTable('daily-week', 'week', entities, rows, cal)),
    ...notes,
    section(
      t().trendHeading,
      trendChart({
        points,
        target: callTarget,
        title: t().trendHeading,
        labels: { calls: kpiName('calls'), rate: kpiName('connect_rate'), target: t().proRated },
        formatRate: (v) => `${Math.round(v * 100)}%`,
      }),
    ),
  );
}

// --- weekly: the funnel against target, the bottleneck and its cause ---------------------------

function weekTarget(key, weekRow, monthRow, cal) {
  if (weekRow && weekRow.target !== null) return weekRow.target;
  if (!monthRow || monthRow.target === null) return null;
  if (!isCount(key)) return monthRow.target;
  return cal.monthDays ? (monthRow.target * cal.weekDays) / cal.monthDays : null;
}

function bottleneckPanel(funnel, heading) {
  const lang = state.lang;
  const stages = h(
    'table',
    { class: 'grid compact', dataset: { table: 'month-funnel' } },
    h(
      'thead',
      {},
      h('tr', {}, [t().stage, t().actual, t().target, t().achievement].map((label) => h('th', { text: label }))),
    ),
    h(
      'tbody',
      {},
      funnel.stages.map((stage) =>
        h(
          'tr',
          { class: stage.stage === funnel.bottleneck ? 'bottleneck-row' : '', dataset: { kpi: stage.stage } },
          h('th', { scope: 'row', text: kpiName(stage.stage) }),
          h('td', { dataset: { field: 'actual', value: raw(stage.actual) }, text: fmt(stage.stage, stage.actual) }),
          h('td', { dataset: { field: 'target', value: raw(stage.target) }, text: fmt(stage.stage, stage.target) }),
          h(
            'td',
            { class: shareClass(stage.achievement), dataset: { field: 'achievement', value: raw(stage.achievement) } },
            F.formatShare(stage.achievement),
          ),
        ),
      ),
    ),
  );
  const verdict = funnel.bottleneck
    ? h(
        'dl',
        { class: 'verdict', dataset: { bottleneck: funnel.bottleneck, cause: funnel.cause || '' } },
        h('dt', { text: t().bottleneck }),
        h('dd', { class: 'bottleneck-name' }, `${kpiName(funnel.bottleneck)} (${t().achievement} ${F.formatShare(funnel.bottleneck_achievement)})`),
        h('dt', { text: t().cause }),
        h('dd', { class: 'cause', text: funnel.cause ? t()[`cause_${funnel.cause}`] : '\u2014' }),
        funnel.hint ? [h('dt', { text: t().hint }), h('dd', { class: 'hint', text: funnel.hint[lang] })] : null,
        funnel.approach ? [h('dt', { text: t().approach }), h('dd', { class: 'approach', text: funnel.approach[lang] })] : null,
      )
    : h('p', { class: 'verdict none', dataset: { bottleneck: '' }, text: t().noBottleneck });
  return section(heading, verdict, stages);
}

async function renderWeekly(main) {
  const week = state.week || F.mondayOf(ctx.today);
  const end = F.addDays(week, 6);
  const asOf = week > ctx.today ? end : F.minDay(end, ctx.today);
  const month = F.monthOf(asOf);
  const kids = membersOf(state.scope, state.id);
  const kpi = WEEKLY_KPIS.join(',');
  const fetchRows = (params) =>
    Promise.all([
      api.kpis({ ...params, kpi, grain: 'week', from: week, to: end }),
      api.kpis({ ...params, kpi, grain: 'month', from: F.firstOfMonth(month), to: F.lastOfMonth(month) }),
    ]);
  const funnelOf = (scope, id) => api.get('/v1/funnel', { month, scope, id });
  const [cal, own, members, funnel, memberFunnels] = await Promise.all([
    businessCalendar(asOf),
    fetchRows(selfParams()),
    kids ? fetchRows({ scope: kids.scope }) : Promise.resolve([[], []]),
    funnelOf(state.scope, state.id),
    kids ? Promise.all(kids.ids.map((id) => funnelOf(kids.scope, id))) : Promise.resolve([]),
  ]);
  const weekRows = index([...own[0], ...members[0]]);
  const monthRows = index([...own[1], ...members[1]]);
  const me = selfId();
  const line = (key, id) => {
    const row = weekRows.get(`${id}|${key}`);
    const target = weekTarget(key, row, monthRows.get(`${id}|${key}`), cal);
    return { row, value: row ? row.value : null, target, achievement: share(row?.value, target) };
  };

  const funnelRows = WEEKLY_KPIS.map((key) => {
    const item = line(key, me);
    return h(
      'tr',
      { class: isCount(key) ? 'stage' : 'rate', dataset: { kpi: key } },
      h('th', { scope: 'row', text: kpiName(key) }),
      h('td', { class: statusClass(item.row), title: statusTitle(key, item.row), dataset: { field: 'actual', value: raw(item.value) }, text: fmt(key, item.value) }),
      h('td', { dataset: { field: 'target', value: raw(item.target) }, text: fmt(key, item.target) }),
      h('td', { class: shareClass(item.achievement), dataset: { field: 'achievement', value: raw(item.achievement) } }, F.formatShare(item.achievement)),
    );
  });
  const chart = targetBars({
    rows: FUNNEL_COUNTS.map((key) => {
      const item = line(key, me);
      return {
        key,
        label: kpiName(key),
        actual: item.value,
        target: item.target,
        text: `${fmt(key, item.value)} / ${fmt(key, item.target)} (${F.formatShare(item.achievement)})`,
      };
    }),
    title: t().funnelHeading,
    labels: { actual: t().actual, target: t().target },
    className: 'funnel-chart',
  });

  const content = [
    h('h1', { class: 'view-title', text: t().weeklyHeading(week, end) }),
    periodControls(
      'week',
      week,
      week <= ctx.today && ctx.today <= end ? t().businessDayOf(cal.weekElapsed, cal.weekDays) : `${cal.weekDays} ${t().businessDays}`,
      (n) => F.addDays(week, 7 * n),
    ),
    section(
      t().funnelHeading,
      chart,
      h(
        'table',
        { class: 'grid compact', dataset: { table: 'week-funnel' } },
        h('thead', {}, h('tr', {}, [t().stage, t().actual, t().target, t().achievement].map((label) => h('th', { text: label })))),
        h('tbody', {}, funnelRows),
      ),
      h('p', { class: 'note', text: t().funnelNote }),
    ),
    bottleneckPanel(funnel, t().bottleneckHeading(month)),
  ];
  if (kids) {
    const head = h(
      'tr',
      {},
      h('th', { text: t().name }),
      WEEKLY_KPIS.map((key) => h('th', { dataset: { kpi: key } }, kpiName(key))),
      h('th', { text: t().bottleneck }),
      h('th', { text: t().cause }),
    );
    const body = kids.ids.map((id, i) => {
      const memberFunnel = memberFunnels[i];
      return h(
        'tr',
        { class: 'member', dataset: { scopeId: id, scope: kids.scope } },
        h('th', { scope: 'row' }, memberLink(kids.scope, id)),
        WEEKLY_KPIS.map((key) => {
          const item = line(key, id);
          return h(
            'td',
            { class: `kpi ${statusClass(item.row)}`, title: statusTitle(key, item.row), dataset: { kpi: key, value: raw(item.value), target: raw(item.target) } },
            h('span', { class: 'v', text: fmt(key, item.value) }),
            item.target !== null ? h('span', { class: 't', text: ` / ${fmt(key, item.target)}` }) : null,
          );
        }),
        h('td', { class: 'bottleneck', dataset: { bottleneck: memberFunnel.bottleneck || '' } }, memberFunnel.bottleneck ? kpiName(memberFunnel.bottleneck) : '\u2014'),
        h('td', { class: 'cause', dataset: { cause: memberFunnel.cause || '' } }, memberFunnel.cause ? t()[`cause_${memberFunnel.cause}`] : '\u2014'),
      );
    });
    content.push(section(t().memberFunnel, h('table', { class: 'grid', dataset: { table: 'week-members' } }, h('thead', {}, head), h('tbody', {}, body))));
  }
  main.replaceChildren(...content);
}

// --- monthly: all tiers against target, landing forecast, the phase's focus, per member ---------

function stars(count) {
  return '\u2605'.repeat(count) + '\u2606'.repeat(3 - count);
}

function kpiRow(key, row, extra = {}) {
  return h(
    'tr',
    { dataset: { kpi: key }, class: extra.focus ? 'focus' : '' },
    h('th', { scope: 'row' }, kpiName(key), extra.stars ? h('span', { class: 'stars', text: ` ${stars(extra.stars)}` }) : null),
    h('td', { class: `num ${statusClass(row)}`, title: statusTitle(key, row), dataset: { field: 'value', value: raw(row?.value) } }, fmt(key, row?.value)),
    h('td', { class: 'num', dataset: { field: 'target', value: raw(row?.target) } }, fmt(key, row?.target)),
    h('td', { class: `num ${shareClass(row?.achievement)}`, dataset: { field: 'achievement', value: raw(row?.achievement) } }, F.formatShare(row?.achievement)),
    h('td', { class: 'band', text: bandText(key, row?.band) }),
    h('td', { class: `status ${statusClass(row)}`, text: row?.status ? t()[`status_${row.status}`] : '' }),
  );
}

function forecastSection(forecast, target) {
  if (!forecast) return section(t().forecastHeading('\u2014'), h('p', { class: 'note', text: t().noForecast }));
  const rows = forecast.data
    .filter((row) => row.scope_id === target)
    .sort((a, b) => (a.kpi === 'won_amount' ? -1 : b.kpi === 'won_amount' ? 1 : ctx.keys.indexOf(a.kpi) - ctx.keys.indexOf(b.kpi)));
  const parts = (row) => {
    const pipeline = row.pipeline;
    const runRate = pipeline === null && row.forecast !== null ? row.forecast - row.actual : null;
    return { runRate, pipeline };
  };
  const table = h(
    'table',
    { class: 'grid compact', dataset: { table: 'forecast' } },
    h(
      'thead',
      {},
      h('tr', {}, [t().name, t().actual, t().runRate, t().pipeline, t().forecast, t().target, t().achievement].map((label) => h('th', { text: label }))),
    ),
    h(
      'tbody',
      {},
      rows.map((row) => {
        const { runRate, pipeline } = parts(row);
        const cell = (field, value) => h('td', { class: 'num', dataset: { field, value: raw(value) } }, fmt(row.kpi, value));
        return h(
          'tr',
          { dataset: { kpi: row.kpi } },
          h('th', { scope: 'row', text: kpiName(row.kpi) }),
          cell('actual', row.actual),
          cell('run_rate', runRate),
          cell('pipeline', pipeline),
          cell('forecast', row.forecast),
          cell('target', row.target),
          h('td', { class: `num ${shareClass(row.achievement)}`, dataset: { field: 'achievement', value: raw(row.achievement) } }, F.formatShare(row.achievement)),
        );
      }),
    ),
  );
  const chart = targetBars({
    rows: rows.map((row) => {
      const { runRate, pipeline } = parts(row);
      return {
        key: row.kpi,
        label: kpiName(row.kpi),
        actual: row.actual,
        projected: pipeline !== null ? pipeline : runRate,
        target: row.target,
        text: `${fmt(row.kpi, row.forecast)} / ${fmt(row.kpi, row.target)}`,
      };
    }),
    title: t().forecastHeading(forecast.meta.as_of),
    labels: { actual: t().actual, projected: `${t().runRate} / ${t().pipeline}`, target: t().target },
    className: 'forecast-chart',
  });
  const first = rows[0];
  const days = first ? ` \u00b7 ${t().businessDayOf(first.business_days_elapsed, first.business_days)}` : '';
  return section(`${t().forecastHeading(forecast.meta.as_of)}${days}`, chart, table, h('p', { class: 'note', text: t().forecastNote }));
}

function memberTable(name, scope, ids, rows, landing, keys) {
  const head = h(
    'tr',
    {},
    h('th', { text: t().name }),
    keys.map((key) => h('th', { dataset: { kpi: key } }, kpiName(key))),
    h('th', { dataset: { kpi: 'landing' } }, t().landing),
  );
  const body = ids.map((id) =>
    h(
      'tr',
      { class: 'member', dataset: { scopeId: id, scope } },
      h('th', { scope: 'row' }, memberLink(scope, id)),
      keys.map((key) => {
        const row = rows.get(`${id}|${key}`);
        return h(
          'td',
          { class: `kpi ${statusClass(row)}`, title: statusTitle(key, row), dataset: { kpi: key, value: raw(row?.value), target: raw(row?.target), achievement: raw(row?.achievement) } },
          h('span', { class: 'v', text: fmt(key, row?.value) }),
          row && row.target !== null ? h('span', { class: `a ${shareClass(row.achievement)}`, text: ` ${F.formatShare(row.achievement)}` }) : null,
        );
      }),
      (() => {
        const row = landing.get(id);
        return h(
          'td',
          { class: `kpi ${shareClass(row?.achievement)}`, dataset: { kpi: 'landing', value: raw(row?.forecast), target: raw(row?.target) } },
          h('span', { class: 'v', text: fmt('won_amount', row?.forecast) }),
          row && row.target !== null ? h('span', { class: 'a', text: ` ${F.formatShare(row.achievement)}` }) : null,
        );
      })(),
    ),
  );
  return h('table', { class: 'grid', dataset: { table: name } }, h('thead', {}, head), h('tbody', {}, body));
}

async function renderMonthly(main) {
  const month = state.month || F.monthOf(ctx.today);
  const first = F.firstOfMonth(month);
  const last = F.lastOfMonth(month);
  const current = F.monthOf(ctx.today);
  const forecastParams = month > current ? null : { month, as_of: month === current ? null : last };
  const kids = membersOf(state.scope, state.id);
  const range = { grain: 'month', from: first, to: last };
  const [phaseCatalog, own, teamRows, repRows, forecast, teamLanding, repLanding] = await Promise.all([
    api.get('/v1/kpis/catalog', { phase: state.phase }),
    api.kpis({ ...selfParams(), ...range }),
    state.scope === 'org' ? api.kpis({ scope: 'team', ...range }) : Promise.resolve([]),
    state.scope !== 'rep' ? api.kpis({ scope: 'rep', ...range }) : Promise.resolve([]),
    forecastParams ? api.get('/v1/forecast', { ...forecastParams, ...selfParams() }) : Promise.resolve(null),
    forecastParams && state.scope === 'org' ? api.get('/v1/forecast', { ...forecastParams, scope: 'team', kpi: 'won_amount' }) : Promise.resolve(null),
    forecastParams && state.scope !== 'rep' ? api.get('/v1/forecast', { ...forecastParams, scope: 'rep', kpi: 'won_amount' }) : Promise.resolve(null),
  ]);
  const me = selfId();
  const rows = index([...own, ...teamRows, ...repRows]);
  const focus = phaseCatalog.data.map((item) => ({ key: item.key, stars: item.phase_priority[state.phase], note: item.phase_notes[state.phase] }));
  const focusKeys = focus.map((item) => item.key);

  const phaseSelect = h(
    'label',
    { class: 'phase' },
    `${t().phase}: `,
    h(
      'select',
      {
        name: 'phase',
        onchange: (event) => {
          state.phase = event.target.value;
          localStorage.setItem(PHASE_KEY, state.phase);
          render();
        },
      },
      PHASES.map((phase) => h('option', { value: phase, selected: phase === state.phase }, t()[`phase_${phase}`])),
    ),
  );
  const cards = h(
    'div',
    { class: 'cards', dataset: { phase: state.phase } },
    focus.map((item) => {
      const row = rows.get(`${me}|${item.key}`);
      return h(
        'div',
        { class: `card ${statusClass(row)}`, dataset: { kpi: item.key, value: raw(row?.value), stars: item.stars } },
        h('div', { class: 'card-title' }, kpiName(item.key), h('span', { class: 'stars', text: ` ${stars(item.stars)}` })),
        h('div', { class: 'card-value', text: fmt(item.key, row?.value) }),
        h('div', { class: 'card-target' }, `${t().target} ${fmt(item.key, row?.target)} \u00b7 ${t().achievement} ${F.formatShare(row?.achievement)}`),
        item.note ? h('div', { class: 'card-note', text: item.note }) : null,
      );
    }),
    phaseCatalog.meta.gaps.map((gap) =>
      h(
        'div',
        { class: 'card gap', title: gap.reason, dataset: { gap: gap.name_ja } },
        h('div', { class: 'card-title' }, gap.name_ja, h('span', { class: 'stars', text: ` ${stars(gap.stars)}` })),
        h('div', { class: 'card-value', text: t().notMeasured }),
        h('div', { class: 'card-note', text: gap.reason }),
      ),
    ),
  );

  const allBody = [];
  allBody.push(h('tr', { class: 'group' }, h('th', { colspan: 6, text: t().focusHeading })));
  for (const item of focus) allBody.push(kpiRow(item.key, rows.get(`${me}|${item.key}`), { focus: true, stars: item.stars }));
  for (const tier of TIERS) {
    const keys = ctx.keys.filter((key) => entry(key).tier === tier && !focusKeys.includes(key));
    if (!keys.length) continue;
    allBody.push(h('tr', { class: 'group' }, h('th', { colspan: 6, text: t()[`tier_${tier}`] })));
    for (const key of keys) allBody.push(kpiRow(key, rows.get(`${me}|${key}`)));
  }
  const allTable = h(
    'table',
    { class: 'grid compact', dataset: { table: 'month-kpis' } },
    h('thead', {}, h('tr', {}, [t().name, t().actual, t().target, t().achievement, t().band, t().status].map((label) => h('th', { text: label })))),
    h('tbody', {}, allBody),
  );

  const memberKeys = [...focusKeys, ...MEMBER_KPIS.filter((key) => !focusKeys.includes(key))];
  const landing = new Map();
  for (const body of [teamLanding, repLanding]) for (const row of body ? body.data : []) landing.set(row.scope_id, row);
  const content = [
    h('h1', { class: 'view-title', text: t().monthlyHeading(month) }),
    h('div', { class: 'period-row' }, periodControls('month', month, `${first} \u2013 ${last}`, (n) => F.addMonths(month, n)), phaseSelect),
    section(`${t().focusHeading} \u2014 ${t()[`phase_${state.phase}`]}`, cards),
    forecastSection(forecast, me),
    section(t().allKpisHeading, allTable),
  ];
  if (kids && kids.scope === 'team') {
    content.push(section(`${t().memberHeading} \u2014 ${t().teams}`, memberTable('month-teams', 'team', kids.ids, rows, landing, memberKeys)));
  }
  if (state.scope !== 'rep') {
    const repIds = state.scope === 'org' ? repsWithTeam() : kids.ids;
    content.push(section(`${t().allReps}`, memberTable('month-reps', 'rep', repIds, rows, landing, memberKeys)));
  }
  main.replaceChildren(...content);
}

// --- rendering ---------------------------------------------------------------------------------

async function render() {
  const mine = ++renderCount;
  readHash();
  applyLanguage();
  document.body.dataset.state = 'loading';
  $('#login').hidden = true;
  $('#app').hidden = false;
  $('#sign-out').hidden = false;
  $('#crumbs').replaceChildren(breadcrumbs());
  const main = h('div', { class: 'view', dataset: { view: state.view, scope: state.scope, id: state.id || 'org' } });
  // The page on screen stays until the next one is ready (no jump on a refresh).
  if (!$('#content > .view')) $('#content').replaceChildren(h('p', { class: 'loading', text: t().loading }));
  $('#content').classList.add('updating');
  try {
    const views = { daily: renderDaily, weekly: renderWeekly, monthly: renderMonthly };
    await Promise.all([views[state.view](main), renderFreshness()]);
    if (mine !== renderCount) return;
    $('#content').replaceChildren(main);
    $('#content').classList.remove('updating');
    document.body.dataset.state = 'ready';
  } catch (error) {
    if (mine !== renderCount) return;
    if (error instanceof AuthError) {
      forgetToken();
      showLogin(t().tokenRejected);
      return;
    }
    console.error(error);
    $('#content').classList.remove('updating');
    $('#content').replaceChildren(h('p', { class: 'error', role: 'alert', text: `${t().error}: ${error.message}` }));
    document.body.dataset.state = 'error';
  }
}

function showLogin(message) {
  api = null;
  ctx = null;
  applyLanguage();
  $('#app').hidden = true;
  $('#sign-out').hidden = true;
  const form = $('#login');
  form.hidden = false;
  form.replaceChildren(
    h('h2', { text: t().tokenTitle }),
    h('p', { text: t().tokenHelp }),
    h('label', { for: 'token' }, t().tokenLabel),
    h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'current-password', required: true }),
    h('button', { type: 'submit', text: t().tokenSubmit }),
  );
  if (message) form.append(h('p', { class: 'error', role: 'alert', id: 'login-error', text: message }));
  document.body.dataset.state = 'login';
  $('#token').focus();
}

async function signIn(token) {
  api = new Api(token);
  try {
    await loadContext();
  } catch (error) {
    api = null;
    if (error instanceof AuthError) {
      forgetToken();
      showLogin(t().tokenRejected);
      return;
    }
    showLogin(`${t().error}: ${error.message}`);
    return;
  }
  setToken(token);
  render();
}

/** Everything again from the API: the day may have turned, a sync may have landed. */
async function refresh() {
  if (!api || !ctx) return;
  api.cache.clear();
  try {
    await loadContext();
  } catch (error) {
    if (error instanceof AuthError) {
      forgetToken();
      showLogin(t().tokenRejected);
      return;
    }
  }
  render();
}

function start() {
  for (const button of document.querySelectorAll('#lang button')) {
    button.addEventListener('click', () => setLanguage(button.dataset.lang));
  }
  $('#login').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('#token').value.trim();
    if (token) signIn(token);
  });
  $('#sign-out').addEventListener('click', () => {
    forgetToken();
    showLogin();
  });
  $('#refresh').addEventListener('click', refresh);
  window.setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, REFRESH_MS);
  // A click anywhere on a member's row drills down, as its name link does.
  $('#content').addEventListener('click', (event) => {
    const row = event.target.closest('tr.member');
    if (!row || event.target.closest('a')) return;
    const link = row.querySelector('a.drill');
    if (link) window.location.hash = link.getAttribute('href');
  });
  window.addEventListener('hashchange', () => {
    if (api && ctx) render();
  });
  readHash();
  applyLanguage();
  const token = getToken();
  if (token) signIn(token);
  else showLogin();
}

start();
