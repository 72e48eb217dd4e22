// The review sheets of GET /v1/sheets/{daily,weekly,monthly}: their numbers, then the notes
// and actions of notes.js, for one period and one scope. The daily, weekly and monthly views
// put them first; printing the page prints these panels only.

import { h, raw, section } from './dom.js';
import * as F from './format.js';
import { actionsPanel, notesPanel, noteAccess } from './notes.js';

// The monthly sheet's per-rep columns (the sheet's own list, in its order).
const REP_KPIS = ['calls', 'connect_rate', 'effective_contacts', 'meeting_conversion_rate', 'meetings_set', 'won_count', 'won_amount'];

/** The share a row is judged by: its pace in a running period (counts, sums), else its achievement. */
export function judged(item) {
  if (item.pace_achievement !== null && item.pace_achievement !== undefined) return item.pace_achievement;
  return item.achievement ?? null;
}

/** The query of a sheet: its period parameter and the scope (no id for the org). */
export function sheetParams(kind, period, scope, id) {
  const name = { daily: 'date', weekly: 'week', monthly: 'month' }[kind];
  return { [name]: period, scope, id: scope === 'org' ? null : id };
}

function num(env, key, field, value) {
  return h('td', { class: 'num', dataset: { field, value: raw(value) } }, env.fmt(key, value));
}

function shareTd(field, value, tone = value) {
  return h('td', { class: `num ${F.shareClass(tone)}`, dataset: { field, value: raw(value), tone: F.shareClass(tone) } }, F.formatShare(value));
}

function table(name, headings, rows) {
  return h(
    'table',
    { class: 'grid compact sheet-table', dataset: { table: name } },
    h('thead', {}, h('tr', {}, headings.map((label) => h('th', { text: label })))),
    h('tbody', {}, rows),
  );
}

function sheetSection(title, ...children) {
  const node = section(title, ...children);
  node.classList.add('sheet');
  return node;
}

// --- daily -------------------------------------------------------------------------------------

function dailyNumbers(sheet, env) {
  const t = env.t;
  const counts = sheet.counts.map((item) =>
    h(
      'tr',
      { dataset: { kpi: item.kpi, targetSource: raw(item.target_source) } },
      h('th', { scope: 'row', text: item.kpi === 'connects' ? t.connects : env.kpiName(item.kpi) }),
      num(env, item.kpi, 'midday_actual', item.midday.actual),
      num(env, item.kpi, 'midday_target', item.midday.target),
      shareTd('midday_progress', item.midday.progress),
      num(env, item.kpi, 'actual', item.end_of_day.actual),
      num(env, item.kpi, 'target', item.end_of_day.target),
      shareTd('progress', item.end_of_day.progress),
    ),
  );
  const rates = sheet.rates.map((item) =>
    h(
      'tr',
      { dataset: { kpi: item.kpi } },
      h('th', { scope: 'row', text: env.kpiName(item.kpi) }),
      num(env, item.kpi, 'actual', item.value),
      h('td', { class: 'num', text: `${F.formatValue(item.numerator, 'count', env.t)} / ${F.formatValue(item.denominator, 'count', env.t)}` }),
      num(env, item.kpi, 'target', item.target),
      shareTd('achievement', item.achievement),
    ),
  );
  const head = [t.kpi, t.middayActual(sheet.midday_check), t.middayTarget, t.progress, t.dayActual, t.dayTarget, t.progress];
  return [
    sheetSection(
      t.dailySheetHeading(sheet.period, env.nameOf(sheet.scope, sheet.scope_id)),
      table('sheet-daily', head, counts),
      table('sheet-daily-rates', [t.kpi, t.actual, t.ratio, t.target, t.achievement], rates),
      h('p', { class: 'note', text: t.dailySheetNote(sheet.month_business_days) }),
    ),
  ];
}

// --- weekly ------------------------------------------------------------------------------------

function weeklyNumbers(sheet, env) {
  const t = env.t;
  const rows = sheet.kpis.map((item) =>
    h(
      'tr',
      { dataset: { kpi: item.kpi, tone: F.shareClass(judged(item)) } },
      h('th', { scope: 'row', text: env.kpiName(item.kpi) }),
      num(env, item.kpi, 'target', item.target),
      num(env, item.kpi, 'actual', item.actual),
      shareTd('achievement', item.achievement, judged(item)),
      num(env, item.kpi, 'pace_target', item.pace_target),
      shareTd('pace_achievement', item.pace_achievement),
      num(env, item.kpi, 'previous_actual', item.previous_actual),
    ),
  );
  const funnel = sheet.funnel;
  const stages = funnel.stages.map((stage) =>
    h(
      'tr',
      { class: stage.stage === funnel.bottleneck ? 'bottleneck-row' : '', dataset: { kpi: stage.stage, tone: F.shareClass(judged(stage)) } },
      h('th', { scope: 'row', text: env.kpiName(stage.stage) }),
      num(env, stage.stage, 'target', stage.target),
      num(env, stage.stage, 'actual', stage.actual),
      shareTd('achievement', stage.achievement, judged(stage)),
      shareTd('pace_achievement', stage.pace_achievement),
    ),
  );
  const verdict = funnel.bottleneck
    ? h(
        'dl',
        { class: 'sheet-verdict', dataset: { bottleneck: funnel.bottleneck, cause: raw(funnel.cause) } },
        h('dt', { text: t.bottleneck }),
        h('dd', { class: 'bottleneck-name' }, `${env.kpiName(funnel.bottleneck)} (${t.achievement} ${F.formatShare(funnel.bottleneck_achievement)})`),
        h('dt', { text: t.cause }),
        h('dd', { class: 'cause', text: funnel.cause ? t[`cause_${funnel.cause}`] : '\u2014' }),
        funnel.hint ? [h('dt', { text: t.hint }), h('dd', { class: 'hint', text: funnel.hint[env.lang] })] : null,
      )
    : h('p', { class: 'sheet-verdict none', dataset: { bottleneck: '' }, text: t.noBottleneck });
  const elapsed = sheet.business_days_elapsed === null ? `${sheet.business_days} ${t.businessDays}` : t.businessDayOf(sheet.business_days_elapsed, sheet.business_days);
  return [
    sheetSection(
      t.weeklySheetHeading(sheet.period, env.nameOf(sheet.scope, sheet.scope_id)),
      h('p', { class: 'period-label', text: `${sheet.period_start} \u2013 ${sheet.period_end} \u00b7 ${elapsed}` }),
      table('sheet-weekly', [t.kpi, t.target, t.actual, t.achievement, t.paceTarget, t.paceAchievement, t.previousWeek], rows),
      h('p', { class: 'note', text: t.paceNote }),
    ),
    sheetSection(t.weekFunnelHeading, verdict, table('sheet-weekly-funnel', [t.stage, t.target, t.actual, t.achievement, t.paceAchievement], stages)),
  ];
}

// --- monthly -----------------------------------------------------------------------------------

function monthlyNumbers(sheet, env) {
  const t = env.t;
  const kpis = sheet.kpis.map((item) =>
    h(
      'tr',
      { dataset: { kpi: item.kpi, tone: F.shareClass(judged(item)) } },
      h('th', { scope: 'row', text: env.kpiName(item.kpi) }),
      num(env, item.kpi, 'actual', item.actual),
      num(env, item.kpi, 'target', item.target),
      shareTd('achievement', item.achievement, judged(item)),
      num(env, item.kpi, 'pace_target', item.pace_target),
      shareTd('pace_achievement', item.pace_achievement),
    ),
  );
  const basis = sheet.forecast.basis;
  const landing = sheet.forecast.rows.map((row) =>
    h(
      'tr',
      { dataset: { kpi: row.kpi } },
      h('th', { scope: 'row', text: env.kpiName(row.kpi) }),
      num(env, row.kpi, 'actual', row.actual),
      num(env, row.kpi, 'pipeline', row.pipeline),
      num(env, row.kpi, 'forecast', row.forecast),
      num(env, row.kpi, 'target', row.target),
      // The landing is judged against the full month's target, not its pace.
      shareTd('achievement', row.achievement),
    ),
  );
  const basisText = basis.as_of
    ? `${t.asOf} ${basis.as_of} \u00b7 ${t.businessDayOf(basis.business_days_elapsed, basis.business_days)} \u00b7 ${t.forecastNote}`
    : t.noForecast;
  const reps = sheet.reps.map((rep) =>
    h(
      'tr',
      { class: 'member', dataset: { scopeId: rep.rep_id, scope: 'rep' } },
      h('th', { scope: 'row' }, env.memberLink('rep', rep.rep_id, rep.name)),
      REP_KPIS.map((key) => {
        const item = rep.kpis[key] || {};
        return h(
          'td',
          { class: `kpi ${F.shareClass(judged(item))}`, dataset: { kpi: key, value: raw(item.actual), target: raw(item.target), tone: F.shareClass(judged(item)) } },
          h('span', { class: 'v', text: env.fmt(key, item.actual ?? null) }),
          item.target !== null && item.target !== undefined ? h('span', { class: 't', text: ` / ${env.fmt(key, item.target)}` }) : null,
        );
      }),
    ),
  );
  const nodes = [
    sheetSection(
      t.monthlySheetHeading(sheet.period, env.nameOf(sheet.scope, sheet.scope_id)),
      table('sheet-monthly', [t.kpi, t.actual, t.target, t.achievement, t.paceTarget, t.paceAchievement], kpis),
      h('p', { class: 'note', text: t.paceNote }),
    ),
    sheetSection(
      t.landingHeading,
      table('sheet-monthly-forecast', [t.kpi, t.actual, t.pipeline, t.forecast, t.target, t.achievement], landing),
      h('p', { class: 'note forecast-basis', dataset: { asOf: raw(basis.as_of), elapsed: raw(basis.business_days_elapsed), days: raw(basis.business_days) }, text: basisText }),
    ),
  ];
  if (sheet.reps.length) {
    nodes.push(
      sheetSection(
        t.allReps,
        h(
          'table',
          { class: 'grid members sheet-table', dataset: { table: 'sheet-monthly-reps' } },
          h('thead', {}, h('tr', {}, h('th', { text: t.name }), REP_KPIS.map((key) => h('th', { dataset: { kpi: key } }, env.kpiName(key))))),
          h('tbody', {}, reps),
        ),
      ),
    );
  }
  return nodes;
}

const NUMBERS = { daily: dailyNumbers, weekly: weeklyNumbers, monthly: monthlyNumbers };

/**
 * The daily sheet's actions: the open ones of its week and the overdue ones, filed under its
 * scope (a rep's: also those it owns), as the weekly sheet lists them; the daily sheet's
 * JSON has none, so they are GET /v1/actions?status=open, picked here.
 */
async function dailyActions(day, scope, id, env) {
  const week = F.isoWeek(day);
  const own = scope === 'org' ? 'org' : id;
  const open = (await env.api.get('/v1/actions', { status: 'open' })).data;
  const actions = open.filter(
    (action) => (action.week === week || action.overdue) && ((action.scope === scope && action.scope_id === own) || (scope === 'rep' && action.owner === own)),
  );
  return { period: week, period_start: F.mondayOf(day), scope, scope_id: own, actions };
}

/** The sheet's panels for ``period`` (a date, a YYYY-Www week or a YYYY-MM month) and scope. */
export async function sheetPanels(kind, period, scope, id, env) {
  const params = sheetParams(kind, period, scope, id);
  const [sheet, week] = await Promise.all([
    env.api.get(`/v1/sheets/${kind}`, params),
    kind === 'daily' ? dailyActions(period, scope, id, env) : null,
  ]);
  const notes = noteAccess(sheet, env);
  const toolbar = h(
    'div',
    { class: 'sheet-toolbar' },
    h('button', { type: 'button', class: 'action', name: 'print', onclick: () => window.print() }, env.t.print),
    h('span', { class: 'note', text: notes.canWrite ? env.t.canWriteNote : env.t.readOnlyNotes }),
  );
  const nodes = [toolbar, ...NUMBERS[kind](sheet, env), notesPanel(kind, sheet, notes, env)];
  if (kind !== 'monthly') nodes.push(actionsPanel(week || sheet, notes.canWrite, env));
  return h('div', { class: 'sheet-view', dataset: { sheet: kind, period: sheet.period, write: String(notes.canWrite) } }, nodes);
}
