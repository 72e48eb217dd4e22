// The progress sheets of the seed article as a dashboard: daily activity against target,
// the weekly bottleneck review, and the monthly landing and factor analysis, each drilling
// down org → team → rep. Every number comes from the public REST API (/v1/...).

import { Api, AuthError, forgetToken, getToken, setToken } from './api.js';
import { LEVELS, levelBar, levelReached, targetBars, trendChart } from './charts.js';
import * as F from './format.js';
import { SOURCES, STRINGS, initialLanguage, rememberLanguage } from './i18n.js';
import { h, raw, section } from './dom.js';
import { LiveData } from './live.js';
import { sheetPanels } from './sheets.js';

const VIEWS = ['daily', 'weekly', 'monthly', 'targets'];
const PHASES = ['launch', 'growth', 'mature'];
const TIERS = ['behavioral', 'tactical', 'strategic', 'efficiency'];
const PHASE_KEY = 'iskpi.phase';
const STALE_HOURS = 24;

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
let live = null; // the /v1/meta poll: refreshes the numbers when the data moves
let movedWhileEditing = false;
let ctx = null; // {today, timezone, catalog: Map, keys: [], teams: [], reps: Map}
let renderCount = 0;

const t = () => STRINGS[state.lang];
const $ = (selector) => document.querySelector(selector);

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

// --- the three target levels: 最低ライン / 達成目標 / ストレッチ ---------------------------------

/** A KPI row's targets at the three levels (nulls where unset). */
function levelsOf(row) {
  const targets = row?.targets || {};
  return {
    minimum: targets.minimum ?? null,
    achievement: targets.achievement ?? row?.target ?? null,
    stretch: targets.stretch ?? null,
  };
}

function anyLevel(levels) {
  return LEVELS.some((level) => levels[level] !== null && levels[level] !== undefined);
}

function scaleLevels(levels, factor) {
  const out = {};
  for (const level of LEVELS) out[level] = levels[level] === null || factor === null ? null : levels[level] * factor;
  return out;
}

const REACHED_TONE = { none: 'tone-none', below: 'tone-bad', minimum: 'tone-warn', achievement: 'tone-good', stretch: 'tone-high' };

/** The bar of an actual against its three levels, coloured by the level reached. */
function levelsBar(key, value, levels, pace = 1) {
  const labels = { actual: t().actual };
  for (const level of LEVELS) labels[level] = t()[`lv_${level}`];
  const bar = levelBar({ value, levels, pace, labels, format: (v) => fmt(key, v) });
  return h('span', { class: 'levels-bar', dataset: { reached: levelReached(value, levels, pace) } }, bar);
}

/** A running period's share of its business days for count KPIs (1 for closed periods and rates). */
function paceOf(key, row, fallback = 1) {
  if (!isCount(key)) return 1;
  if (row && row.pace_target !== null && row.pace_target !== undefined && row.target) return row.pace_target / row.target;
  return fallback;
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

// --- the organization: teams, and reps with their team and level (GET /v1/teams) -----------

async function loadContext() {
  const [me, catalog, forecast, listing] = await Promise.all([
    api.get('/v1/me'), // the token's role: which forms the pages show
    api.get('/v1/kpis/catalog'),
    api.get('/v1/forecast', { kpi: 'calls' }),
    // The inside-sales teams and their reps, each rep with its skill level; field sales
    // (ISKPI_FIELD_SALES_TEAMS) is not listed.
    api.get('/v1/teams', { kind: 'is' }),
  ]);
  const today = forecast.meta.as_of;
  const teams = [];
  const reps = new Map();
  for (const team of listing.data) {
    teams.push({ id: team.id, name: team.name });
    for (const rep of team.reps) reps.set(rep.id, { id: rep.id, name: rep.name, team: team.id, level: rep.level });
  }
  ctx = {
    today,
    timezone: forecast.meta.timezone,
    catalog: new Map(catalog.data.map((item) => [item.key, item])),
    keys: catalog.data.map((item) => item.key),
    teams,
    reps,
    role: me.role, // read, write (a member: notes and actions) or admin
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

/** The reps an action of a sheet may be given to: the org's, the team's, or the rep. */
function repsIn(scope, id) {
  if (scope === 'rep') return [ctx.reps.get(id) || { id, name: id }];
  const ids = scope === 'org' ? repsWithTeam() : membersOf(scope, id).ids;
  return ids.map((rep) => ctx.reps.get(rep));
}

/** What the sheet modules need of the shell: the API, the words, the catalog, the reps, a re-render. */
function sheetEnv() {
  return {
    api,
    t: t(),
    lang: state.lang,
    today: ctx.today,
    keys: ctx.keys,
    reps: ctx.reps,
    role: ctx.role,
    kpiName,
    fmt,
    memberLink,
    nameOf,
    repsIn,
    rerender: () => {
      api.cache.clear();
      render();
    },
  };
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

/** Pro-rated targets of a count KPI (at one level; default the achievement target): the day, the week, the week so far. */
function countTargets(dayRow, weekRow, monthRow, cal, level = 'achievement') {
  const of = (row) => (row ? levelsOf(row)[level] : null);
  let day = null;
  if (of(dayRow) !== null) day = of(dayRow);
  else if (!cal.isBusinessDay) day = null;
  else if (of(weekRow) !== null && cal.weekDays) day = of(weekRow) / cal.weekDays;
  else if (of(monthRow) !== null && cal.monthDays) day = of(monthRow) / cal.monthDays;
  let week = null;
  if (of(weekRow) !== null) week = of(weekRow);
  else if (of(monthRow) !== null && cal.monthDays) week = (of(monthRow) * cal.weekDays) / cal.monthDays;
  const weekToDate = week !== null && cal.weekDays ? (week * cal.weekElapsed) / cal.weekDays : null;
  return { day, week, weekToDate };
}

/** The three levels of a count KPI, pro-rated as countTargets does, for ``period`` (day, week, weekToDate). */
function countLevels(dayRow, weekRow, monthRow, cal, period) {
  const out = {};
  for (const level of LEVELS) out[level] = countTargets(dayRow, weekRow, monthRow, cal, level)[period];
  return out;
}

function rateTarget(...rows) {
  for (const row of rows) if (row && row.target !== null) return row.target;
  return null;
}

/** A rate's three levels: each from the first row that has it. */
function rateLevels(...rows) {
  const out = {};
  for (const level of LEVELS) {
    out[level] = null;
    for (const row of rows) {
      const value = row ? levelsOf(row)[level] : null;
      if (value !== null) {
        out[level] = value;
        break;
      }
    }
  }
  return out;
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
  live?.tell();
}

function setLanguage(lang) {
  state.lang = lang;
  rememberLanguage(lang);
  applyLanguage();
  if (api && ctx) render();
  else if (!getToken()) showLogin();
}

/** Each source's last successful (ok or partial) sync, from the last /v1/meta answer. */
function renderFreshness() {
  const box = $('#freshness');
  const meta = live?.meta;
  if (!meta) {
    box.replaceChildren(h('span', { class: 'stale', text: `${t().freshness}: ${t().liveFailing}` }));
    return;
  }
  const items = [];
  const stale = [];
  for (const sync of meta.syncs) {
    const { source, running: syncing } = sync;
    const at = sync.last_success_at;
    const hours = at ? (Date.now() - Date.parse(at)) / 3.6e6 : null;
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
          : sync.status && sync.status !== 'ok'
            ? h('span', { class: 'run-status', text: ` \u00b7 ${t().lastRun}: ${sync.status}` })
            : null,
      ),
    );
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

/** "Updated N min ago" from /v1/meta, ticking; its tooltip has each source's last sync. */
function showUpdated(meta, age, failing) {
  const box = $('#updated');
  const lines = meta.syncs.map((sync) => {
    const name = SOURCES[sync.source] || sync.source;
    const at = sync.last_success_at ? `${t().lastSync} ${sync.last_success_at.slice(0, 16).replace('T', ' ')} UTC` : t().neverSynced;
    const run = sync.running ? t().syncing : sync.status && sync.status !== 'ok' ? `${t().lastRun}: ${sync.status}` : '';
    return `${name}: ${at}${run ? ` \u00b7 ${run}` : ''}`;
  });
  if (failing) lines.push(t().liveFailing);
  box.textContent = age === null ? t().neverSynced : t().updatedAgo(age);
  box.title = lines.join('\n');
  box.dataset.freshnessSeconds = age === null ? '' : String(Math.floor(age));
  box.dataset.failing = String(failing);
  box.className = `updated${age === null || age > STALE_HOURS * 3600 ? ' stale' : ''}${failing ? ' failing' : ''}`;
  box.hidden = false;
}

/** Whether ``element`` is a field of the view: redrawn under a typing user, it loses the caret. */
function editing(element) {
  return !!element && $('#content').contains(element) && element.matches('input, textarea, select');
}

/** The data moved: new numbers, except on the targets page, whose forms would be reset, and
 * while the user types in a field (a note): then when they leave it. */
function dataMoved() {
  if (state.view !== 'targets' && !editing(document.activeElement)) {
    refresh();
    return;
  }
  api?.cache.clear(); // the next view drawn reads the new numbers
  if (state.view !== 'targets') movedWhileEditing = true;
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

/** A rep's skill level (初級 / 中級 / 上級), shown beside the name in the lists. */
function levelBadge(scope, id) {
  const level = scope === 'rep' ? ctx.reps.get(id)?.level : null;
  if (!level) return null;
  return h('span', { class: 'level', title: t().level, dataset: { level }, text: t()[`level_${level}`] });
}

/** A member's name in a list: the link that drills into it, and a rep's level. */
function memberName(scope, id) {
  return [memberLink(scope, id), levelBadge(scope, id)];
}

// --- daily: today's and this week's activity against pro-rated targets -------------------------

function dailyCell(key, row, target, progress, period, levels) {
  const value = row ? row.value : null;
  const cell = h('td', {
    class: `kpi ${statusClass(row)}`,
    title: statusTitle(key, row),
    dataset: { kpi: key, period, value: raw(value), target: raw(target), progress: raw(progress), status: row?.status || '' },
  });
  cell.append(h('span', { class: 'v', text: fmt(key, value) }));
  if (target !== null) cell.append(h('span', { class: 't', text: ` / ${fmt(key, target)}` }));
  if (progress !== null) cell.append(h('span', { class: 'p', text: ` ${F.formatShare(progress)}` }));
  if (levels && anyLevel(levels)) cell.append(levelsBar(key, value, levels));
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
        if (period === 'day') return dailyCell(key, d, targets.day, share(d?.value, targets.day), 'day', countLevels(d, w, m, cal, 'day'));
        return dailyCell(key, w, targets.weekToDate, share(w?.value, targets.weekToDate), 'week', countLevels(d, w, m, cal, 'weekToDate'));
      }
      const row = period === 'day' ? d : w;
      const target = period === 'day' ? rateTarget(d, w, m) : rateTarget(w, m);
      const levels = period === 'day' ? rateLevels(d, w, m) : rateLevels(w, m);
      return dailyCell(key, row, target, share(row?.value, target), period, levels);
    });
    body.append(
      h(
        'tr',
        { class: entity.total ? 'total' : 'member', dataset: { scopeId: entity.id, scope: entity.scope } },
        h('th', { scope: 'row' }, entity.total ? nameOf(entity.scope, entity.id) : memberName(entity.scope, entity.id)),
        cells,
      ),
    );
  }
  return h('table', { class: 'grid members', dataset: { table: name } }, h('thead', {}, head), body);
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
  const [sheet, cal, own, members, trend] = await Promise.all([
    sheetPanels('daily', day, state.scope, state.id, sheetEnv()),
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
  const callLevels = countLevels(rows.day.get(selfKey), rows.week.get(selfKey), rows.month.get(selfKey), cal, 'day');
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
    sheet,
    section(dayLabel, dailyTable('daily-day', 'day', entities, rows, cal)),
    section(weekLabel, dailyTable('daily-week', 'week', entities, rows, cal)),
    ...notes,
    section(
      t().trendHeading,
      trendChart({
        points,
        target: callTarget,
        levels: callLevels,
        title: t().trendHeading,
        labels: { calls: kpiName('calls'), rate: kpiName('connect_rate'), target: t().proRated, minimum: t().lv_minimum, stretch: t().lv_stretch },
        formatRate: (v) => `${Math.round(v * 100)}%`,
      }),
    ),
  );
}

// --- weekly: the funnel against target, the bottleneck and its cause ---------------------------

function weekTarget(key, weekRow, monthRow, cal, level = 'achievement') {
  const of = (row) => (row ? levelsOf(row)[level] : null);
  if (of(weekRow) !== null) return of(weekRow);
  if (of(monthRow) === null) return null;
  if (!isCount(key)) return of(monthRow);
  return cal.monthDays ? (of(monthRow) * cal.weekDays) / cal.monthDays : null;
}

function weekLevels(key, weekRow, monthRow, cal) {
  const out = {};
  for (const level of LEVELS) out[level] = weekTarget(key, weekRow, monthRow, cal, level);
  return out;
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
            { class: F.shareClass(stage.achievement), dataset: { field: 'achievement', value: raw(stage.achievement) } },
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
  const [sheet, cal, own, members, funnel, memberFunnels] = await Promise.all([
    sheetPanels('weekly', F.isoWeek(week), state.scope, state.id, sheetEnv()),
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
    const monthRow = monthRows.get(`${id}|${key}`);
    const target = weekTarget(key, row, monthRow, cal);
    const levels = weekLevels(key, row, monthRow, cal);
    return { row, value: row ? row.value : null, target, levels, achievement: share(row?.value, target) };
  };

  const funnelRows = WEEKLY_KPIS.map((key) => {
    const item = line(key, me);
    return h(
      'tr',
      { class: isCount(key) ? 'stage' : 'rate', dataset: { kpi: key } },
      h('th', { scope: 'row', text: kpiName(key) }),
      h('td', { class: statusClass(item.row), title: statusTitle(key, item.row), dataset: { field: 'actual', value: raw(item.value) }, text: fmt(key, item.value) }),
      h('td', { dataset: { field: 'target', value: raw(item.target) }, text: fmt(key, item.target) }),
      h('td', { class: F.shareClass(item.achievement), dataset: { field: 'achievement', value: raw(item.achievement) } }, F.formatShare(item.achievement)),
      levelsTd(key, item.value, item.levels),
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
        levels: item.levels,
        text: `${fmt(key, item.value)} / ${fmt(key, item.target)} (${F.formatShare(item.achievement)})`,
      };
    }),
    title: t().funnelHeading,
    labels: { actual: t().actual, target: t().lv_achievement, minimum: t().lv_minimum, stretch: t().lv_stretch },
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
    sheet,
    section(
      t().funnelHeading,
      chart,
      h(
        'table',
        { class: 'grid compact', dataset: { table: 'week-funnel' } },
        h('thead', {}, h('tr', {}, [t().stage, t().actual, t().target, t().achievement, t().levels].map((label) => h('th', { text: label })))),
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
        h('th', { scope: 'row' }, memberName(kids.scope, id)),
        WEEKLY_KPIS.map((key) => {
          const item = line(key, id);
          return h(
            'td',
            { class: `kpi ${statusClass(item.row)}`, title: statusTitle(key, item.row), dataset: { kpi: key, value: raw(item.value), target: raw(item.target) } },
            h('span', { class: 'v', text: fmt(key, item.value) }),
            item.target !== null ? h('span', { class: 't', text: ` / ${fmt(key, item.target)}` }) : null,
            anyLevel(item.levels) ? levelsBar(key, item.value, item.levels) : null,
          );
        }),
        h('td', { class: 'bottleneck', dataset: { bottleneck: memberFunnel.bottleneck || '' } }, memberFunnel.bottleneck ? kpiName(memberFunnel.bottleneck) : '\u2014'),
        h('td', { class: 'cause', dataset: { cause: memberFunnel.cause || '' } }, memberFunnel.cause ? t()[`cause_${memberFunnel.cause}`] : '\u2014'),
      );
    });
    content.push(section(t().memberFunnel, h('table', { class: 'grid members', dataset: { table: 'week-members' } }, h('thead', {}, head), h('tbody', {}, body))));
  }
  main.replaceChildren(...content);
}

// --- monthly: all tiers against target, landing forecast, the phase's focus, per member ---------

function stars(count) {
  return '\u2605'.repeat(count) + '\u2606'.repeat(3 - count);
}

/** A table cell of the three levels: the bar, and the levels' values under it. */
function levelsTd(key, value, levels, pace = 1) {
  const td = h('td', { class: 'levels-cell', dataset: { field: 'levels' } });
  if (!anyLevel(levels)) return td;
  td.append(
    levelsBar(key, value, levels, pace),
    h(
      'span',
      { class: 'lv-values' },
      LEVELS.map((level) =>
        h('span', { class: `lv lv-${level}`, dataset: { level, value: raw(levels[level]) }, title: t()[`lv_${level}`] }, fmt(key, levels[level])),
      ),
    ),
  );
  return td;
}

function kpiRow(key, row, extra = {}) {
  return h(
    'tr',
    { dataset: { kpi: key }, class: extra.focus ? 'focus' : '' },
    h('th', { scope: 'row' }, kpiName(key), extra.stars ? h('span', { class: 'stars', text: ` ${stars(extra.stars)}` }) : null),
    h('td', { class: `num ${statusClass(row)}`, title: statusTitle(key, row), dataset: { field: 'value', value: raw(row?.value) } }, fmt(key, row?.value)),
    h('td', { class: 'num', dataset: { field: 'target', value: raw(row?.target) } }, fmt(key, row?.target)),
    h('td', { class: `num ${F.shareClass(row?.achievement)}`, dataset: { field: 'achievement', value: raw(row?.achievement) } }, F.formatShare(row?.achievement)),
    levelsTd(key, row?.value ?? null, levelsOf(row), paceOf(key, row, extra.pace)),
    h('td', { class: 'band', text: bandText(key, row?.band) }),
    h('td', { class: `status ${statusClass(row)}`, text: row?.status ? t()[`status_${row.status}`] : '' }),
  );
}

function forecastSection(forecast, target, kpiRows = new Map()) {
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
          h('td', { class: `num ${F.shareClass(row.achievement)}`, dataset: { field: 'achievement', value: raw(row.achievement) } }, F.formatShare(row.achievement)),
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
        // The landing against the month's three levels (the KPI row's targets).
        levels: row.target === null ? null : levelsOf(kpiRows.get(`${target}|${row.kpi}`)),
        text: `${fmt(row.kpi, row.forecast)} / ${fmt(row.kpi, row.target)}`,
      };
    }),
    title: t().forecastHeading(forecast.meta.as_of),
    labels: { actual: t().actual, projected: `${t().runRate} / ${t().pipeline}`, target: t().lv_achievement, minimum: t().lv_minimum, stretch: t().lv_stretch },
    className: 'forecast-chart',
  });
  const first = rows[0];
  const days = first ? ` \u00b7 ${t().businessDayOf(first.business_days_elapsed, first.business_days)}` : '';
  return section(`${t().forecastHeading(forecast.meta.as_of)}${days}`, chart, table, h('p', { class: 'note', text: t().forecastNote }));
}

function memberTable(name, scope, ids, rows, landing, keys, pace = 1) {
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
      h('th', { scope: 'row' }, memberName(scope, id)),
      keys.map((key) => {
        const row = rows.get(`${id}|${key}`);
        return h(
          'td',
          { class: `kpi ${statusClass(row)}`, title: statusTitle(key, row), dataset: { kpi: key, value: raw(row?.value), target: raw(row?.target), achievement: raw(row?.achievement) } },
          h('span', { class: 'v', text: fmt(key, row?.value) }),
          row && row.target !== null ? h('span', { class: `a ${F.shareClass(row.achievement)}`, text: ` ${F.formatShare(row.achievement)}` }) : null,
          anyLevel(levelsOf(row)) ? levelsBar(key, row?.value ?? null, levelsOf(row), paceOf(key, row, pace)) : null,
        );
      }),
      (() => {
        const row = landing.get(id);
        return h(
          'td',
          { class: `kpi ${F.shareClass(row?.achievement)}`, dataset: { kpi: 'landing', value: raw(row?.forecast), target: raw(row?.target) } },
          h('span', { class: 'v', text: fmt('won_amount', row?.forecast) }),
          row && row.target !== null ? h('span', { class: 'a', text: ` ${F.formatShare(row.achievement)}` }) : null,
        );
      })(),
    ),
  );
  return h('table', { class: 'grid members', dataset: { table: name } }, h('thead', {}, head), h('tbody', {}, body));
}

async function renderMonthly(main) {
  const month = state.month || F.monthOf(ctx.today);
  const first = F.firstOfMonth(month);
  const last = F.lastOfMonth(month);
  const current = F.monthOf(ctx.today);
  const forecastParams = month > current ? null : { month, as_of: month === current ? null : last };
  const kids = membersOf(state.scope, state.id);
  const range = { grain: 'month', from: first, to: last };
  const [sheet, phaseCatalog, own, teamRows, repRows, forecast, teamLanding, repLanding] = await Promise.all([
    sheetPanels('monthly', month, state.scope, state.id, sheetEnv()),
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
  // The running month's count KPIs are coloured by pace: the levels × business days elapsed ÷ the month's.
  const paceRow = month === current && forecast ? forecast.data[0] : null;
  const pace = paceRow && paceRow.business_days ? paceRow.business_days_elapsed / paceRow.business_days : 1;
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
        anyLevel(levelsOf(row)) ? levelsBar(item.key, row?.value ?? null, levelsOf(row), paceOf(item.key, row, pace)) : null,
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
  allBody.push(h('tr', { class: 'group' }, h('th', { colspan: 7, text: t().focusHeading })));
  for (const item of focus) allBody.push(kpiRow(item.key, rows.get(`${me}|${item.key}`), { focus: true, stars: item.stars, pace }));
  for (const tier of TIERS) {
    const keys = ctx.keys.filter((key) => entry(key).tier === tier && !focusKeys.includes(key));
    if (!keys.length) continue;
    allBody.push(h('tr', { class: 'group' }, h('th', { colspan: 7, text: t()[`tier_${tier}`] })));
    for (const key of keys) allBody.push(kpiRow(key, rows.get(`${me}|${key}`), { pace }));
  }
  const allTable = h(
    'table',
    { class: 'grid compact', dataset: { table: 'month-kpis' } },
    h('thead', {}, h('tr', {}, [t().name, t().actual, t().target, t().achievement, t().levels, t().band, t().status].map((label) => h('th', { text: label })))),
    h('tbody', {}, allBody),
  );

  const memberKeys = [...focusKeys, ...MEMBER_KPIS.filter((key) => !focusKeys.includes(key))];
  const landing = new Map();
  for (const body of [teamLanding, repLanding]) for (const row of body ? body.data : []) landing.set(row.scope_id, row);
  const content = [
    h('h1', { class: 'view-title', text: t().monthlyHeading(month) }),
    h('div', { class: 'period-row' }, periodControls('month', month, `${first} \u2013 ${last}`, (n) => F.addMonths(month, n)), phaseSelect),
    sheet,
    section(`${t().focusHeading} \u2014 ${t()[`phase_${state.phase}`]}`, cards),
    forecastSection(forecast, me, rows),
    section(t().allKpisHeading, allTable),
  ];
  if (kids && kids.scope === 'team') {
    content.push(section(`${t().memberHeading} \u2014 ${t().teams}`, memberTable('month-teams', 'team', kids.ids, rows, landing, memberKeys, pace)));
  }
  if (state.scope !== 'rep') {
    const repIds = state.scope === 'org' ? repsWithTeam() : kids.ids;
    content.push(section(`${t().allReps}`, memberTable('month-reps', 'rep', repIds, rows, landing, memberKeys, pace)));
  }
  main.replaceChildren(...content);
}

// --- targets: revenue target → plan (逆算) → allocate → drafts per rep → confirm → push ---------

// What the targets page keeps between its renders (form values, the last answers).
const TARGET_KPIS = ['won_count', 'won_amount', 'meetings_set', 'effective_contacts', 'calls', 'deals_created', 'connect_rate', 'meeting_conversion_rate'];
const METHODS = ['equal', 'history', 'skill'];
const PLAN_RATES = ['meeting_win_rate', 'meeting_conversion_rate', 'effective_contact_rate'];
const ui = {
  parent: 'org',
  mode: 'amount',
  revenue: '',
  rates: { meeting_win_rate: '', meeting_conversion_rate: '', effective_contact_rate: '', avg_deal_size: '' },
  plan: null,
  kpi: 'meetings_set',
  level: 'achievement',
  method: 'skill',
  value: '',
  preview: null,
  edit: { rep: '', level: 'achievement', value: '', reason: '' },
  pushLevel: 'achievement',
  push: null,
  message: null, // {tone: 'ok'|'error', text, status}
};

/** The page's message: the API's text of a refusal, or a function of the language (re-rendered in it). */
function say(tone, text, status = null) {
  ui.message = { tone, text, status };
}

/** Run a write; its refusal (403, 409, 422 …) is shown as the API's message, as text. */
async function attempt(action, done) {
  ui.message = null;
  try {
    const answer = await action();
    if (done) done(answer);
  } catch (error) {
    if (error instanceof AuthError) throw error;
    say('error', `${error.status || ''} ${error.message}`.trim(), error.status || null);
  }
  api.cache.clear();
  render();
}

function parentParams() {
  return ui.parent === 'org' ? { scope: 'org', id: 'org' } : { scope: 'team', id: ui.parent };
}

function parentReps() {
  const reps = [...ctx.reps.values()].filter((rep) => rep.team !== null);
  return (ui.parent === 'org' ? reps : reps.filter((rep) => rep.team === ui.parent)).map((rep) => rep.id);
}

function bind(node, object, key, event = 'input') {
  node.addEventListener(event, () => {
    object[key] = node.value;
  });
  return node;
}

function select(name, value, options, onchange) {
  const node = h(
    'select',
    { name, 'aria-label': name },
    options.map(([key, label]) => h('option', { value: key, selected: key === value }, label)),
  );
  node.addEventListener('change', () => onchange(node.value));
  return node;
}

function button(name, label, onclick, extra = {}) {
  return h('button', { type: 'button', class: `action ${extra.primary ? 'primary' : ''}`, name, onclick, disabled: extra.disabled }, label);
}

/** A numbered step of the loop (the numbers follow the steps shown: a reader sees fewer). */
function step(title, ...children) {
  const node = section(title, ...children);
  node.classList.add('step');
  return node;
}

function statusBadge(status) {
  return h('span', { class: `tstatus tstatus-${status}`, dataset: { status }, text: t()[`tstatus_${status}`] });
}

function planSection(month) {
  const modeSelect = select('plan-mode', ui.mode, [['amount', t().planAmount], ['count', t().planCount]], (value) => {
    ui.mode = value;
  });
  const input = bind(h('input', { type: 'number', name: 'plan-target', min: 0, step: 'any', value: ui.revenue, 'aria-label': t().planTarget }), ui, 'revenue');
  const run = async () => {
    const value = Number(ui.revenue);
    const body = { month, scope: parentParams().scope, id: ui.parent === 'org' ? null : ui.parent };
    if (ui.mode === 'amount') body.won_amount_target = value;
    else body.won_target = value;
    // Rates are entered as percentages; empty ones are the trailing three months'.
    for (const key of PLAN_RATES) if (ui.rates[key] !== '') body[key] = Number(ui.rates[key]) / 100;
    if (ui.mode === 'amount' && ui.rates.avg_deal_size !== '') body.avg_deal_size = Number(ui.rates.avg_deal_size);
    await attempt(
      () => api.send('POST', '/v1/plan', null, body),
      (answer) => {
        ui.plan = answer;
        ui.message = null;
      },
    );
  };
  const form = h('div', { class: 'form-row' }, modeSelect, input, button('plan', t().planRun, run, { primary: true }));
  const rates = h(
    'div',
    { class: 'form-row rates' },
    PLAN_RATES.map((key) =>
      h('label', {}, `${kpiName(key)} (%) `, bind(h('input', { type: 'number', name: key, min: 0, max: 100, step: 'any', value: ui.rates[key], placeholder: t().auto }), ui.rates, key)),
    ),
    h('label', {}, `${t().avgDealSize} `, bind(h('input', { type: 'number', name: 'avg_deal_size', min: 0, step: 'any', value: ui.rates.avg_deal_size, placeholder: t().auto }), ui.rates, 'avg_deal_size')),
  );
  const children = [h('p', { class: 'note', text: t().planNote }), form, rates];
  const plan = ui.plan;
  if (plan && plan.month === F.firstOfMonth(month)) {
    const head = [t().stage, t().planMonth, t().perDay, t().perRep, t().perRepDay, t().rate].map((label) => h('th', { text: label }));
    const body = plan.steps.map((step) =>
      h(
        'tr',
        { dataset: { stage: step.stage } },
        h('th', { scope: 'row', text: kpiName(step.stage) }),
        h('td', { dataset: { field: 'value', value: raw(step.value) } }, fmt(step.stage, step.value)),
        h('td', { dataset: { field: 'per_business_day', value: raw(step.per_business_day) } }, F.formatValue(step.per_business_day, 'ratio-free', t())),
        h('td', { dataset: { field: 'per_rep', value: raw(step.per_rep) } }, F.formatValue(step.per_rep, 'ratio-free', t())),
        h('td', { dataset: { field: 'per_rep_per_business_day', value: raw(step.per_rep_per_business_day) } }, F.formatValue(step.per_rep_per_business_day, 'ratio-free', t())),
        h('td', { class: 'rate' }, step.rate ? `${kpiName(step.rate)} ${fmt(step.rate, step.rate_used)}` : '\u2014'),
        ctx.role === 'admin'
          ? h(
              'td',
              {},
              button(`use-${step.stage}`, t().planUse, () => {
                ui.kpi = step.stage;
                ui.value = String(step.value);
                ui.preview = null;
                render();
              }),
            )
          : null,
      ),
    );
    const facts = [
      `${t().wonTarget} ${fmt('won_count', plan.won_target)}`,
      plan.avg_deal_size ? `${t().avgDealSize} ${fmt('won_amount', plan.avg_deal_size.value)} (${t()[`source_${plan.avg_deal_size.source}`]})` : null,
      `${plan.business_days} ${t().businessDays}`,
      `${t().reps} ${plan.reps}`,
    ].filter(Boolean);
    children.push(
      h('p', { class: 'plan-facts', dataset: { wonTarget: plan.won_target, reps: plan.reps, businessDays: plan.business_days } }, facts.join(' \u00b7 ')),
      h('table', { class: 'grid compact', dataset: { table: 'plan' } }, h('thead', {}, h('tr', {}, head)), h('tbody', {}, body)),
      h(
        'p',
        { class: 'note' },
        plan.rates.map((rate) => `${kpiName(rate.kpi)} ${fmt(rate.kpi, rate.value)} (${t()[`source_${rate.source}`]})`).join(' \u00b7 '),
      ),
    );
  }
  return step(t().planHeading, ...children);
}

function allocateSection(month) {
  const kpiSelect = select('allocate-kpi', ui.kpi, TARGET_KPIS.map((key) => [key, kpiName(key)]), (value) => {
    ui.kpi = value;
    ui.preview = null;
    render();
  });
  const levelSelect = select('allocate-level', ui.level, LEVELS.map((level) => [level, t()[`lv_${level}`]]), (value) => {
    ui.level = value;
  });
  const methodSelect = select('allocate-method', ui.method, METHODS.map((method) => [method, t()[`method_${method}`]]), (value) => {
    ui.method = value;
  });
  const valueInput = bind(h('input', { type: 'number', name: 'allocate-value', min: 0, step: 'any', value: ui.value, placeholder: t().storedTarget, 'aria-label': t().value }), ui, 'value');
  const run = (dryRun) =>
    attempt(
      () =>
        api.send('POST', '/v1/targets/allocate', null, {
          kpi: ui.kpi,
          grain: 'month',
          period_start: F.firstOfMonth(month),
          ...parentParams(),
          level: ui.level,
          value: ui.value === '' ? null : Number(ui.value),
          method: ui.method,
          dry_run: dryRun,
        }),
      (answer) => {
        ui.preview = answer;
        say('ok', () => dryRun ? t().previewDone : t().allocated(answer.written));
      },
    );
  const children = [
    h('p', { class: 'note', text: t().allocateNote }),
    h(
      'div',
      { class: 'form-row' },
      h('label', {}, `${t().kpi} `, kpiSelect),
      h('label', {}, `${t().targetLevel} `, levelSelect),
      h('label', {}, `${t().method} `, methodSelect),
      h('label', {}, `${t().value} `, valueInput),
      button('preview', t().preview, () => run(true)),
      button('allocate', t().allocate, () => run(false), { primary: true }),
    ),
  ];
  const preview = ui.preview;
  if (preview && preview.kpi === ui.kpi && preview.period_start === F.firstOfMonth(month)) {
    const total = preview.reps.reduce((sum, rep) => sum + rep.value, 0);
    children.push(
      h(
        'table',
        { class: 'grid compact', dataset: { table: 'allocation', dryRun: String(preview.dry_run), method: preview.method, mode: preview.mode } },
        h('thead', {}, h('tr', {}, [t().name, t().level, t().weight, t().shareOf, t().value].map((label) => h('th', { text: label })))),
        h(
          'tbody',
          {},
          preview.reps.map((rep) =>
            h(
              'tr',
              { dataset: { scopeId: rep.id } },
              h('th', { scope: 'row', text: rep.name }),
              h('td', { text: t()[`level_${rep.level}`] }),
              h('td', { text: rep.weight === null ? '\u2014' : F.fixed(rep.weight, 2) }),
              h('td', { text: F.formatShare(rep.share) }),
              h('td', { dataset: { field: 'value', value: raw(rep.value) } }, fmt(preview.kpi, rep.value)),
            ),
          ),
          preview.mode === 'split'
            ? h('tr', { class: 'total' }, h('th', { scope: 'row', text: t().total }), h('td'), h('td'), h('td'), h('td', { dataset: { field: 'total', value: raw(total) } }, fmt(preview.kpi, total)))
            : null,
        ),
      ),
      h('p', { class: 'note', text: `${preview.dry_run ? t().dryRunNote : t().writtenNote(preview.written, t()[`tstatus_${preview.status}`])} \u00b7 ${t().parentValue} ${fmt(preview.kpi, preview.value)} (${t()[`vsource_${preview.value_source}`]})` }),
    );
  }
  return step(t().allocateHeading, ...children);
}

function repTargetsSection(month, stored, admin) {
  const first = F.firstOfMonth(month);
  const get = (scope, id, level) => stored.get(`${scope}|${id}|${ui.kpi}|${level}`) || null;
  const cellOf = (scope, id, level) => {
    const target = get(scope, id, level);
    return h(
      'td',
      { class: 'level-value', dataset: { level, value: raw(target?.value), status: target?.status || '' } },
      target ? [h('span', { class: 'v', text: fmt(ui.kpi, target.value) }), ' ', statusBadge(target.status)] : '\u2014',
    );
  };
  const confirmRow = (scope, id) => {
    const drafts = LEVELS.map((level) => get(scope, id, level)).filter((target) => target && target.status === 'draft');
    if (!drafts.length) return null;
    return button(`confirm-${id}`, t().confirm, () =>
      attempt(
        () =>
          api.send(
            'PUT',
            '/v1/targets',
            null,
            drafts.map((target) => ({ kpi: target.kpi, grain: 'month', period_start: first, scope: target.scope, id: target.id, level: target.level, value: target.value, status: 'confirmed' })),
          ),
        () => say('ok', () => t().confirmed(nameOf(scope, id))),
      ),
    );
  };
  const { scope, id } = parentParams();
  const rows = [{ scope, id, total: true }, ...parentReps().map((rep) => ({ scope: 'rep', id: rep, total: false }))];
  const head = h('tr', {}, h('th', { text: t().name }), LEVELS.map((level) => h('th', { dataset: { level }, text: t()[`lv_${level}`] })), admin ? h('th', { text: '' }) : null);
  const body = rows.map((row) =>
    h(
      'tr',
      { class: row.total ? 'total' : '', dataset: { scope: row.scope, scopeId: row.id } },
      h('th', { scope: 'row' }, row.total ? nameOf(row.scope, row.id) : [nameOf('rep', row.id), levelBadge('rep', row.id)]),
      LEVELS.map((level) => cellOf(row.scope, row.id, level)),
      admin ? h('td', {}, confirmRow(row.scope, row.id)) : null,
    ),
  );
  const kpiSelect = select('targets-kpi', ui.kpi, TARGET_KPIS.map((key) => [key, kpiName(key)]), (value) => {
    ui.kpi = value;
    ui.preview = null;
    render();
  });
  const children = [
    h('div', { class: 'form-row' }, h('label', {}, `${t().kpi} `, kpiSelect)),
    h('p', { class: 'note', text: t().repTargetsNote(kpiName(ui.kpi)) }),
    h('table', { class: 'grid compact', dataset: { table: 'rep-targets', kpi: ui.kpi } }, h('thead', {}, head), h('tbody', {}, body)),
  ];
  if (admin) {
    const edit = ui.edit;
    if (!edit.rep || !rows.some((row) => row.id === edit.rep)) edit.rep = rows[rows.length > 1 ? 1 : 0].id;
    const repSelect = select('edit-rep', edit.rep, rows.map((row) => [row.id, nameOf(row.scope, row.id)]), (value) => {
      edit.rep = value;
    });
    const levelSelect = select('edit-level', edit.level, LEVELS.map((level) => [level, t()[`lv_${level}`]]), (value) => {
      edit.level = value;
    });
    const value = bind(h('input', { type: 'number', name: 'edit-value', min: 0, step: 'any', value: edit.value, 'aria-label': t().value }), edit, 'value');
    const reason = bind(h('input', { type: 'text', name: 'edit-reason', maxlength: 2000, value: edit.reason, placeholder: t().reasonHelp, 'aria-label': t().reason }), edit, 'reason');
    const save = () => {
      const row = rows.find((item) => item.id === edit.rep);
      return attempt(
        () =>
          api.send('PUT', '/v1/targets', null, [
            { kpi: ui.kpi, grain: 'month', period_start: first, scope: row.scope, id: row.id, level: edit.level, value: edit.value === '' ? null : Number(edit.value), reason: edit.reason || null },
          ]),
        () => {
          say('ok', () => t().saved(nameOf(row.scope, row.id)));
          edit.value = '';
          edit.reason = '';
        },
      );
    };
    children.push(
      h('h3', { text: t().editHeading }),
      h(
        'div',
        { class: 'form-row', dataset: { form: 'edit' } },
        repSelect,
        levelSelect,
        h('label', {}, `${t().value} `, value),
        h('label', { class: 'grow' }, `${t().reason} `, reason),
        button('save', t().save, save, { primary: true }),
      ),
      h('p', { class: 'note', text: t().reasonNote }),
    );
  }
  return step(t().repTargetsHeading(month), ...children);
}

function pushSection(month) {
  const levelSelect = select('push-level', ui.pushLevel, LEVELS.map((level) => [level, t()[`lv_${level}`]]), (value) => {
    ui.pushLevel = value;
    ui.push = null;
  });
  const run = (dryRun) =>
    attempt(
      () => api.send('POST', '/v1/targets/push', { dry_run: String(dryRun), level: ui.pushLevel }, {}),
      (answer) => {
        ui.push = { ...answer, dryRun, level: ui.pushLevel };
        say('ok', () => dryRun ? t().pushPlanned : t().pushApplied);
      },
    );
  const children = [
    h('p', { class: 'note', text: t().pushNote }),
    h(
      'div',
      { class: 'form-row' },
      h('label', {}, `${t().targetLevel} `, levelSelect),
      button('push-dry-run', t().pushDryRun, () => run(true), { primary: true }),
      ui.push && ui.push.dryRun && ui.push.level === ui.pushLevel ? button('push-apply', t().pushApply, () => run(false)) : null,
    ),
  ];
  if (ui.push) {
    for (const push of ui.push.data) {
      children.push(
        h('p', { class: 'push-summary', dataset: { source: push.source, status: push.status, planned: push.planned, written: push.written } }, t().pushSummary(push)),
        h(
          'table',
          { class: 'grid compact', dataset: { table: 'push', source: push.source, dryRun: String(push.dry_run) } },
          h('thead', {}, h('tr', {}, [t().rep, t().kpi, t().crmField, t().crmValue, t().newValue, t().action].map((label) => h('th', { text: label })))),
          h(
            'tbody',
            {},
            (push.rows || []).map((row) =>
              h(
                'tr',
                { dataset: { rep: row.rep_id, kpi: row.kpi, action: row.action } },
                h('th', { scope: 'row', text: nameOf('rep', row.rep_id) }),
                h('td', { text: kpiName(row.kpi) }),
                h('td', { text: `${row.object}.${row.field}` }),
                h('td', { text: fmt(row.kpi, row.crm_value) }),
                h('td', { dataset: { value: raw(row.new_value) } }, fmt(row.kpi, row.new_value)),
                h('td', { text: `${row.action} (${row.status})` }),
              ),
            ),
          ),
        ),
      );
    }
  }
  return step(t().pushHeading, ...children);
}

function historySection(history) {
  const head = [t().when, t().who, t().name, t().kpi, t().targetLevel, t().change, t().status, t().reason].map((label) => h('th', { text: label }));
  const body = history.map((rev) =>
    h(
      'tr',
      { dataset: { scopeId: rev.id, kpi: rev.kpi, level: rev.level, old: raw(rev.old_value), new: raw(rev.new_value) } },
      h('td', { class: 'when' }, h('time', { datetime: rev.at, text: `${rev.at.slice(0, 16).replace('T', ' ')} UTC` })),
      h('td', { class: 'who', text: rev.who }),
      h('th', { scope: 'row', text: nameOf(rev.scope, rev.id) }),
      h('td', { text: kpiName(rev.kpi) }),
      h('td', { text: t()[`lv_${rev.level}`] || rev.level }),
      h('td', { class: 'change', text: `${fmt(rev.kpi, rev.old_value)} \u2192 ${fmt(rev.kpi, rev.new_value)}` }),
      h('td', { text: `${rev.old_status ? t()[`tstatus_${rev.old_status}`] : '\u2014'} \u2192 ${rev.new_status ? t()[`tstatus_${rev.new_status}`] : '\u2014'}` }),
      h('td', { class: 'reason', text: rev.reason || '' }),
    ),
  );
  return section(
    t().historyHeading,
    history.length
      ? h('table', { class: 'grid compact wrap', dataset: { table: 'history' } }, h('thead', {}, h('tr', {}, head)), h('tbody', {}, body))
      : h('p', { class: 'note', text: t().noHistory }),
  );
}

async function renderTargets(main) {
  const month = state.month || F.monthOf(ctx.today);
  const first = F.firstOfMonth(month);
  const admin = ctx.role === 'admin';
  const [listing, history] = await Promise.all([
    api.get('/v1/targets', { grain: 'month', from: first, to: first }),
    api.get('/v1/targets/history', { grain: 'month', period_start: first, limit: 200 }),
  ]);
  const stored = new Map(listing.data.map((target) => [`${target.scope}|${target.id}|${target.kpi}|${target.level}`, target]));
  const parents = [['org', t().org], ...ctx.teams.map((team) => [team.id, team.name])];
  if (!parents.some(([id]) => id === ui.parent)) ui.parent = 'org';
  const parentSelect = select('parent', ui.parent, parents, (value) => {
    ui.parent = value;
    ui.plan = null;
    ui.preview = null;
    render();
  });
  const content = [
    h('h1', { class: 'view-title', text: t().targetsHeading(month) }),
    h('div', { class: 'period-row' }, periodControls('month', month, `${first} \u2013 ${F.lastOfMonth(month)}`, (n) => F.addMonths(month, n)), h('label', { class: 'phase' }, `${t().allocateOver}: `, parentSelect)),
  ];
  if (!admin) content.push(h('p', { class: 'note warn', id: 'read-only', text: t().readOnly }));
  if (ui.message) {
    content.push(
      h('p', { class: `message ${ui.message.tone}`, id: 'targets-message', role: ui.message.tone === 'error' ? 'alert' : 'status', dataset: { status: raw(ui.message.status) }, text: typeof ui.message.text === 'function' ? ui.message.text() : ui.message.text }),
    );
  }
  content.push(planSection(month));
  if (admin) content.push(allocateSection(month));
  content.push(repTargetsSection(month, stored, admin));
  if (admin) content.push(pushSection(month));
  content.push(historySection(history.data));
  main.dataset.admin = String(admin);
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
    const views = { daily: renderDaily, weekly: renderWeekly, monthly: renderMonthly, targets: renderTargets };
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
  live?.stop();
  live = null;
  $('#updated').hidden = true;
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
  live = new LiveData(api, {
    onMoved: dataMoved,
    onFreshness: showUpdated,
    onAuthError: () => {
      forgetToken();
      showLogin(t().tokenRejected);
    },
  });
  // The first answer is the version the numbers below are read at: a change after it shows.
  const watching = live;
  await watching.start();
  if (live === watching) render(); // else the token was refused meanwhile: the form is up
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
  $('#content').addEventListener('focusout', (event) => {
    if (movedWhileEditing && !editing(event.relatedTarget)) {
      movedWhileEditing = false;
      refresh();
    }
  });
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
