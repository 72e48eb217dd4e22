// A sheet's notes and the week's improvement actions: editable with a member (write) or admin
// token, read-only text for a read token. Notes and titles are inserted as text, never markup.

import { AuthError } from './api.js';
import { h, raw, section } from './dom.js';
import * as F from './format.js';

// The free-text fields of each sheet, in the order the seed's sheets ask them.
export const NOTE_FIELDS = {
  daily: ['went_well', 'issues', 'tomorrow'],
  weekly: ['hypotheses', 'successes', 'next_focus'],
  monthly: ['what', 'why', 'so_what', 'now_what', 'collaboration', 'next_month'],
};
const MAX_NOTE = 10000;
const MAX_TITLE = 500;

// What outlives a render (a refresh re-renders the page, every few seconds while a sync
// runs): the last message of each panel, what is typed and not yet saved, the add form.
const messages = new Map();
const unsaved = new Map(); // `${panel}|${field}` → the text in its box; results by action id
const draft = { title: '', owner: '', due: '', kpi: '' };

function stamp(at) {
  return `${at.slice(0, 16).replace('T', ' ')} UTC`;
}

/** Whether the token may write the sheet's notes (a member or an admin), and who wrote each field last. */
export function noteAccess(sheet, env) {
  return { canWrite: env.role === 'write' || env.role === 'admin', updated: sheet.notes_updated || {} };
}

function messageNode(key, id) {
  const message = messages.get(key);
  messages.delete(key);
  if (!message) return h('p', { class: 'message-slot', id, 'aria-live': 'polite' });
  return h('p', {
    class: `message ${message.tone}`,
    id,
    role: message.tone === 'error' ? 'alert' : 'status',
    dataset: { status: raw(message.status) },
    text: message.text,
  });
}

function showError(slot, error) {
  slot.className = 'message error';
  slot.setAttribute('role', 'alert');
  slot.dataset.status = raw(error.status);
  slot.textContent = `${error.status || ''} ${error.message}`.trim();
}

/** A run of a write: on success the message is kept for the next render; a refusal is shown in ``slot``. */
async function write(action, slot, key, okText, env) {
  try {
    await action();
  } catch (error) {
    if (error instanceof AuthError) throw error;
    showError(slot, error);
    return false;
  }
  messages.set(key, { tone: 'ok', text: okText, status: null });
  env.rerender();
  return true;
}

function whoWhen(update, env) {
  if (!update) return null;
  return h('p', { class: 'who-when', dataset: { by: update.by, at: update.at } }, env.t.lastSaved(update.by, stamp(update.at)));
}

/** One note: a textarea (with its text mirrored for printing) for a writer, the text for a reader. */
function noteField(field, label, text, update, canWrite, env, inputName, panelKey) {
  if (!canWrite) {
    return h(
      'div',
      { class: 'note-field', dataset: { field } },
      h('h3', { text: label }),
      h('p', { class: `note-text ${text ? '' : 'empty'}`, dataset: { field }, text: text || '\u2014' }),
      whoWhen(update, env),
    );
  }
  const typed = `${panelKey}|${field}`;
  const value = unsaved.get(typed) ?? text ?? '';
  const mirror = h('div', { class: 'print-text', text: value });
  const area = h('textarea', { id: inputName, name: inputName, rows: 3, maxlength: MAX_NOTE, dataset: { field, original: text || '' } });
  area.value = value;
  area.addEventListener('input', () => {
    mirror.textContent = area.value;
    unsaved.set(typed, area.value);
  });
  return h('div', { class: 'note-field', dataset: { field } }, h('label', { for: inputName, text: label }), area, mirror, whoWhen(update, env));
}

/** The notes panel of a sheet: its fields (and, monthly, a note per rep) and, for a writer, Save. */
export function notesPanel(kind, sheet, notes, env) {
  const t = env.t;
  const key = `notes|${kind}|${sheet.period}|${sheet.scope}|${sheet.scope_id}`;
  const fields = NOTE_FIELDS[kind].map((field) =>
    noteField(field, t[`note_${field}`], sheet.notes[field], notes.updated[field], notes.canWrite, env, `note-${field}`, key),
  );
  const children = [h('p', { class: 'note', text: t[`notesHelp_${kind}`] }), h('div', { class: 'note-fields' }, fields)];
  if (kind === 'monthly' && sheet.reps.length) {
    const repNotes = sheet.notes.rep_notes || {};
    children.push(
      h('h3', { text: t.note_rep_notes }),
      h(
        'div',
        { class: 'note-fields rep-notes' },
        sheet.reps.map((rep) =>
          noteField(`rep_notes.${rep.rep_id}`, rep.name, repNotes[rep.rep_id], notes.updated[`rep_notes.${rep.rep_id}`], notes.canWrite, env, `rep-note-${rep.rep_id}`, key),
        ),
      ),
    );
  }
  const panel = section(t.notesHeading, ...children);
  panel.classList.add('sheet', 'notes');
  panel.dataset.sheet = kind;
  if (!notes.canWrite) return panel;

  const slot = messageNode(key, 'notes-message');
  const save = async () => {
    const changed = {};
    for (const area of panel.querySelectorAll('textarea')) {
      if (area.value === area.dataset.original) continue;
      const [field, rep] = area.dataset.field.split('.');
      if (rep) (changed.rep_notes ||= {})[rep] = area.value;
      else changed[field] = area.value;
    }
    if (!Object.keys(changed).length) {
      slot.className = 'message ok';
      slot.textContent = t.nothingChanged;
      return;
    }
    const body = { period: sheet.period, scope: sheet.scope, id: sheet.scope === 'org' ? null : sheet.scope_id, notes: changed };
    const saved = async () => {
      await env.api.send('PUT', `/v1/sheets/${kind}/notes`, null, body);
      for (const typed of [...unsaved.keys()]) if (typed.startsWith(`${key}|`)) unsaved.delete(typed);
    };
    await write(saved, slot, key, t.notesSaved, env);
  };
  panel.append(h('div', { class: 'form-row' }, h('button', { type: 'button', class: 'action primary', name: 'save-notes', onclick: save }, t.saveNotes), slot));
  return panel;
}

// --- actions -----------------------------------------------------------------------------------

function actionsKey(sheet) {
  return `actions|${sheet.period}|${sheet.scope}|${sheet.scope_id}`;
}

function actionRow(action, canWrite, key, env) {
  const t = env.t;
  const cells = [
    h('td', { class: 'title', text: action.title }),
    h('td', { class: 'owner', dataset: { owner: action.owner }, text: env.reps.get(action.owner)?.name || action.owner }),
    h('td', { class: 'due' }, action.due, action.overdue ? h('span', { class: 'overdue', text: ` ${t.overdue}` }) : null),
    h('td', { class: 'kpi-name', text: action.kpi ? env.kpiName(action.kpi) : '\u2014' }),
    h('td', { class: `astatus astatus-${action.status}`, text: t[`astatus_${action.status}`] }),
    h('td', { class: 'result', text: action.result || '' }),
  ];
  if (canWrite) {
    const td = h('td', { class: 'row-actions' });
    if (action.status === 'open') {
      const typed = `result|${action.id}`;
      const result = h('input', { type: 'text', name: `result-${action.id}`, maxlength: MAX_NOTE, placeholder: t.resultHelp, 'aria-label': t.result, value: unsaved.get(typed) || '' });
      result.addEventListener('input', () => unsaved.set(typed, result.value));
      const slot = h('span', { class: 'message-slot' });
      const patch = (status) => () =>
        write(
          async () => {
            await env.api.send('PATCH', `/v1/actions/${action.id}`, null, { status, result: result.value.trim() || null });
            unsaved.delete(typed);
          },
          slot,
          key,
          t.actionUpdated,
          env,
        );
      td.append(
        result,
        h('button', { type: 'button', class: 'action', name: `done-${action.id}`, onclick: patch('done') }, t.markDone),
        h('button', { type: 'button', class: 'action', name: `drop-${action.id}`, onclick: patch('dropped') }, t.markDropped),
        slot,
      );
    }
    cells.push(td);
  }
  return h('tr', { dataset: { actionId: action.id, status: action.status, overdue: String(action.overdue), owner: action.owner } }, cells);
}

function addForm(sheet, env) {
  const t = env.t;
  const key = actionsKey(sheet);
  const owners = env.repsIn(sheet.scope, sheet.scope_id);
  if (!owners.some((rep) => rep.id === draft.owner)) draft.owner = owners[0]?.id || '';
  const friday = F.addDays(sheet.period_start, 4);
  if (!draft.due || draft.due < env.today) draft.due = friday < env.today ? env.today : friday;
  const bound = (node, name) => {
    node.addEventListener('input', () => {
      draft[name] = node.value;
    });
    node.addEventListener('change', () => {
      draft[name] = node.value;
    });
    return node;
  };
  const title = bound(h('input', { type: 'text', name: 'action-title', maxlength: MAX_TITLE, placeholder: t.actionTitleHelp, 'aria-label': t.actionTitle, value: draft.title }), 'title');
  const owner = bound(
    h('select', { name: 'action-owner', 'aria-label': t.owner }, owners.map((rep) => h('option', { value: rep.id, selected: rep.id === draft.owner }, rep.name))),
    'owner',
  );
  const due = bound(h('input', { type: 'date', name: 'action-due', min: env.today, value: draft.due, 'aria-label': t.due }), 'due');
  const kpi = bound(
    h(
      'select',
      { name: 'action-kpi', 'aria-label': t.kpi },
      h('option', { value: '', selected: !draft.kpi }, t.noKpi),
      env.keys.map((item) => h('option', { value: item, selected: item === draft.kpi }, env.kpiName(item))),
    ),
    'kpi',
  );
  const slot = messageNode(key, 'actions-message');
  const add = async () => {
    const body = {
      title: draft.title,
      owner: draft.owner,
      due: draft.due,
      kpi: draft.kpi || null,
      week: sheet.period,
      scope: sheet.scope,
      id: sheet.scope === 'org' ? null : sheet.scope_id,
    };
    const done = await write(() => env.api.send('POST', '/v1/actions', null, body), slot, key, t.actionAdded, env);
    if (done) Object.assign(draft, { title: '', kpi: '' });
  };
  return h(
    'div',
    { class: 'add-action', dataset: { form: 'add-action' } },
    h('h3', { text: t.addAction }),
    h(
      'div',
      { class: 'form-row' },
      h('label', { class: 'grow' }, `${t.actionTitle} `, title),
      h('label', {}, `${t.owner} `, owner),
      h('label', {}, `${t.due} `, due),
      h('label', {}, `${t.kpi} `, kpi),
      h('button', { type: 'button', class: 'action primary', name: 'add-action', onclick: add }, t.add),
    ),
    slot,
  );
}

/** A sheet's actions (of its week, and every overdue one) and, for a writer, the add form. */
export function actionsPanel(sheet, canWrite, env) {
  const t = env.t;
  const head = [t.actionTitle, t.owner, t.due, t.kpi, t.status, t.result, canWrite ? '' : null].filter((label) => label !== null);
  const body = sheet.actions.map((action) => actionRow(action, canWrite, actionsKey(sheet), env));
  const panel = section(
    sheet.kind === 'weekly' ? t.actionsHeading : t.openActionsHeading,
    sheet.actions.length
      ? h(
          'table',
          { class: 'grid compact wrap sheet-table', dataset: { table: 'sheet-actions' } },
          h('thead', {}, h('tr', {}, head.map((label) => h('th', { text: label })))),
          h('tbody', {}, body),
        )
      : h('p', { class: 'note', id: 'no-actions', text: t.noActions }),
    canWrite ? addForm(sheet, env) : null,
  );
  panel.classList.add('sheet', 'actions');
  return panel;
}
