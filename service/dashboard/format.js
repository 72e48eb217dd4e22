// Number and date formatting. Deterministic (not the browser's locale) so that what is shown
// can be checked against the API: rates as percentages with one decimal, counts and amounts
// with thousands separators, half away from zero as Number.prototype.toFixed rounds.

const DASH = '\u2014';

function grouped(text) {
  const negative = text.startsWith('-');
  const [whole, fraction] = (negative ? text.slice(1) : text).split('.');
  const withCommas = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${withCommas}${fraction === undefined ? '' : `.${fraction}`}`;
}

export function fixed(value, digits) {
  return grouped(value.toFixed(digits));
}

/** A KPI value in its catalog unit; an em dash for null. */
export function formatValue(value, unit, t) {
  if (value === null || value === undefined || Number.isNaN(value)) return DASH;
  switch (unit) {
    case 'ratio':
      return `${(value * 100).toFixed(1)}%`;
    case 'count':
    case 'amount':
      return fixed(value, 0);
    case 'seconds':
      return `${fixed(value, 0)} ${t.unit_seconds}`;
    case 'minutes':
      return `${fixed(value, 1)} ${t.unit_minutes}`;
    case 'days':
      return `${fixed(value, 1)} ${t.unit_days}`;
    default:
      return fixed(value, 2);
  }
}

/** A share (achievement, progress) as a whole percentage. */
export function formatShare(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return `${(value * 100).toFixed(0)}%`;
}

/** The tone of a share (achievement, progress): green from 1, amber from 0.8, red below. */
export function shareClass(share) {
  if (share === null || share === undefined || !Number.isFinite(share)) return 'tone-none';
  if (share >= 1) return 'tone-good';
  if (share >= 0.8) return 'tone-warn';
  return 'tone-bad';
}

// --- dates: ISO strings (YYYY-MM-DD) in the business calendar, handled as UTC dates --------

export function parseDay(day) {
  const [y, m, d] = day.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function addDays(day, n) {
  const date = parseDay(day);
  date.setUTCDate(date.getUTCDate() + n);
  return isoDay(date);
}

/** The Monday of the ISO week of ``day``. */
export function mondayOf(day) {
  const weekday = (parseDay(day).getUTCDay() + 6) % 7;
  return addDays(day, -weekday);
}

export function monthOf(day) {
  return day.slice(0, 7);
}

export function firstOfMonth(month) {
  return `${month}-01`;
}

export function lastOfMonth(month) {
  const [y, m] = month.split('-').map(Number);
  return isoDay(new Date(Date.UTC(y, m, 0)));
}

export function addMonths(month, n) {
  const [y, m] = month.split('-').map(Number);
  return isoDay(new Date(Date.UTC(y, m - 1 + n, 1))).slice(0, 7);
}

export function minDay(a, b) {
  return a < b ? a : b;
}

/** The ISO week (``YYYY-Www``) of ``day``: the week's Thursday decides its year. */
export function isoWeek(day) {
  const thursday = parseDay(addDays(mondayOf(day), 3));
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86400000));
  return `${year}-W${String(week).padStart(2, '0')}`;
}
