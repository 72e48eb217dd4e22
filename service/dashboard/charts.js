// Small SVG charts, no dependencies: a daily trend (bars and a line), funnel bars, and
// forecast-vs-target bars. Colours come from app.css classes.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Roughly how wide a legend text of 11px is: full-width characters count double. */
function textWidth(text) {
  let width = 0;
  for (const char of text) width += char.charCodeAt(0) > 0x2e80 ? 11 : 6;
  return width;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function frame(width, height, label) {
  return s('svg', {
    viewBox: `0 0 ${width} ${height}`,
    class: 'chart',
    role: 'img',
    'aria-label': label,
    preserveAspectRatio: 'xMidYMid meet',
  });
}

/**
 * Calls per day as bars and the connect rate as a line (right axis).
 * points: [{day, calls, rate}]; target: calls per business day or null.
 */
export function trendChart({ points, target, levels = {}, labels, formatRate, title }) {
  const width = 760;
  const height = 240;
  const pad = { left: 48, right: 52, top: 16, bottom: 38 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const svg = frame(width, height, title);
  svg.classList.add('trend-chart');
  const others = ['minimum', 'stretch'].filter((level) => levels[level] !== null && levels[level] !== undefined);
  const maxCalls = niceMax(Math.max(target || 0, ...others.map((level) => levels[level]), ...points.map((p) => p.calls || 0)));
  const rates = points.map((p) => p.rate).filter((r) => r !== null && r !== undefined);
  // Quarters of 10, 15, 20 or 25 points.
  const maxRate = Math.min(1, Math.ceil(Math.max(0.4, ...rates) / 0.2) * 0.2);
  const slot = innerW / Math.max(points.length, 1);
  const y = (v) => pad.top + innerH - (v / maxCalls) * innerH;
  const yr = (v) => pad.top + innerH - (v / maxRate) * innerH;

  for (let i = 0; i <= 4; i += 1) {
    const value = (maxCalls * i) / 4;
    svg.append(
      s('line', { x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value), class: 'grid-line' }),
      s('text', { x: pad.left - 6, y: y(value) + 4, class: 'axis', 'text-anchor': 'end' }, Math.round(value)),
      s(
        'text',
        { x: width - pad.right + 6, y: yr((maxRate * i) / 4) + 4, class: 'axis rate-axis' },
        formatRate((maxRate * i) / 4),
      ),
    );
  }
  points.forEach((point, i) => {
    const x = pad.left + i * slot;
    const value = point.calls || 0;
    svg.append(
      s(
        'rect',
        {
          x: x + slot * 0.15,
          y: y(value),
          width: Math.max(slot * 0.7, 1),
          height: pad.top + innerH - y(value),
          class: 'bar-calls',
          'data-day': point.day,
          'data-calls': value,
        },
        s('title', {}, `${point.day}: ${value}`),
      ),
    );
    if (points.length <= 16 || i % Math.ceil(points.length / 16) === 0) {
      svg.append(
        s('text', { x: x + slot / 2, y: height - pad.bottom + 16, class: 'axis', 'text-anchor': 'middle' }, point.day.slice(8)),
      );
    }
  });
  if (target) {
    svg.append(
      s('line', { x1: pad.left, x2: width - pad.right, y1: y(target), y2: y(target), class: 'target-line', 'data-level': 'achievement' }),
    );
  }
  for (const level of others) {
    svg.append(
      s('line', { x1: pad.left, x2: width - pad.right, y1: y(levels[level]), y2: y(levels[level]), class: `level-line tick-${level}`, 'data-level': level }),
    );
  }
  const path = [];
  points.forEach((point, i) => {
    if (point.rate === null || point.rate === undefined) return;
    const x = pad.left + i * slot + slot / 2;
    path.push(`${path.length ? 'L' : 'M'}${x.toFixed(1)},${yr(point.rate).toFixed(1)}`);
    svg.append(s('circle', { cx: x, cy: yr(point.rate), r: 3, class: 'dot-rate' }, s('title', {}, `${point.day}: ${formatRate(point.rate)}`)));
  });
  if (path.length) svg.insertBefore(s('path', { d: path.join(' '), class: 'line-rate' }), svg.querySelector('circle'));
  const legendY = height - 6;
  svg.append(
    s('rect', { x: pad.left, y: legendY - 9, width: 10, height: 10, class: 'bar-calls' }),
    s('text', { x: pad.left + 14, y: legendY, class: 'legend' }, labels.calls),
    s('line', { x1: pad.left + 150, x2: pad.left + 170, y1: legendY - 4, y2: legendY - 4, class: 'line-rate' }),
    s('text', { x: pad.left + 176, y: legendY, class: 'legend' }, labels.rate),
  );
  let x = pad.left + 330;
  if (target) {
    svg.append(
      s('line', { x1: x, x2: x + 20, y1: legendY - 4, y2: legendY - 4, class: 'target-line' }),
      s('text', { x: x + 26, y: legendY, class: 'legend' }, labels.target),
    );
    x += 40 + textWidth(labels.target);
  }
  for (const level of others) {
    svg.append(
      s('line', { x1: x, x2: x + 20, y1: legendY - 4, y2: legendY - 4, class: `level-line tick-${level}` }),
      s('text', { x: x + 26, y: legendY, class: 'legend' }, labels[level]),
    );
    x += 40 + textWidth(labels[level]);
  }
  return svg;
}

/**
 * Horizontal bars, one scale per row (actual against target), with an optional projected
 * extension (hatched) and a target tick. rows: [{key, label, actual, projected, target, text}].
 */
export function targetBars({ rows, title, labels, className }) {
  const width = 760;
  const rowH = 34;
  const labelW = 210;
  const textW = 200;
  const height = rows.length * rowH + 30;
  const barW = width - labelW - textW - 10;
  const svg = frame(width, height, title);
  svg.classList.add(className || 'bars-chart');
  rows.forEach((row, i) => {
    const top = 6 + i * rowH;
    const total = (row.actual || 0) + (row.projected || 0);
    const levels = row.levels || {};
    const others = ['minimum', 'stretch'].filter((level) => levels[level] !== null && levels[level] !== undefined);
    const scale = Math.max(total, row.target || 0, ...others.map((level) => levels[level])) || 1;
    const w = (v) => (Math.max(v || 0, 0) / scale) * barW;
    const achieved = row.target ? total / row.target : null;
    let tone = achieved === null ? 'tone-none' : achieved >= 1 ? 'tone-good' : achieved >= 0.8 ? 'tone-warn' : 'tone-bad';
    if (others.length) tone = `reached-${levelReached(total, { ...levels, achievement: row.target })}`;
    const group = s('g', { class: 'bar-row', 'data-kpi': row.key });
    group.append(
      s('text', { x: labelW - 8, y: top + 18, class: 'bar-label', 'text-anchor': 'end' }, row.label),
      s('rect', { x: labelW, y: top + 4, width: barW, height: 20, class: 'bar-track' }),
      s('rect', { x: labelW, y: top + 4, width: w(row.actual), height: 20, class: `bar-actual ${tone}` }),
    );
    if (row.projected) {
      group.append(
        s('rect', {
          x: labelW + w(row.actual),
          y: top + 4,
          width: w(row.projected),
          height: 20,
          class: `bar-projected ${tone}`,
        }),
      );
    }
    if (row.target) {
      const tx = labelW + w(row.target);
      group.append(s('line', { x1: tx, x2: tx, y1: top, y2: top + 28, class: 'target-tick', 'data-level': 'achievement' }));
    }
    for (const level of others) {
      const tx = labelW + w(levels[level]);
      group.append(s('line', { x1: tx, x2: tx, y1: top + 2, y2: top + 26, class: `level-tick tick-${level}`, 'data-level': level }));
    }
    group.append(s('text', { x: labelW + barW + 8, y: top + 18, class: 'bar-text' }, row.text));
    svg.append(group);
  });
  const legendY = height - 8;
  svg.append(
    s('rect', { x: labelW, y: legendY - 9, width: 10, height: 10, class: 'bar-actual tone-none' }),
    s('text', { x: labelW + 14, y: legendY, class: 'legend' }, labels.actual),
  );
  let x = labelW + 110;
  if (labels.projected) {
    svg.append(
      s('rect', { x, y: legendY - 9, width: 10, height: 10, class: 'bar-projected tone-none' }),
      s('text', { x: x + 14, y: legendY, class: 'legend' }, labels.projected),
    );
    x += 30 + textWidth(labels.projected);
  }
  svg.append(
    s('line', { x1: x + 5, x2: x + 5, y1: legendY - 11, y2: legendY + 1, class: 'target-tick' }),
    s('text', { x: x + 14, y: legendY, class: 'legend' }, labels.target),
  );
  x += 30 + textWidth(labels.target);
  let y = legendY;
  for (const level of ['minimum', 'stretch']) {
    if (!labels[level] || !rows.some((row) => row.levels && row.levels[level] !== null && row.levels[level] !== undefined)) continue;
    if (x + 14 + textWidth(labels[level]) > width) {
      // Past the right edge: the levels' legend goes on a line of its own.
      y += 18;
      x = labelW;
      svg.setAttribute('viewBox', `0 0 ${width} ${height + 18}`);
    }
    svg.append(
      s('line', { x1: x + 5, x2: x + 5, y1: y - 11, y2: y + 1, class: `level-tick tick-${level}` }),
      s('text', { x: x + 14, y, class: 'legend' }, labels[level]),
    );
    x += 30 + textWidth(labels[level]);
  }
  return svg;
}

export const LEVELS = ['minimum', 'achievement', 'stretch'];

/**
 * The level an actual has reached: 'stretch', 'achievement', 'minimum' or 'below' ('none'
 * without any target). ``pace`` (0–1] scales the levels of a running period to the
 * business days elapsed, so the 4th of the month is measured against the 4th's share.
 */
export function levelReached(value, levels, pace = 1) {
  const set = LEVELS.filter((level) => levels[level] !== null && levels[level] !== undefined);
  if (!set.length || value === null || value === undefined || !Number.isFinite(value)) return 'none';
  let reached = 'below';
  for (const level of LEVELS) {
    if (set.includes(level) && value >= levels[level] * pace) reached = level;
  }
  return reached;
}

/**
 * One bar of an actual against its three target levels: the actual's fill, coloured by
 * the level reached, and a tick at 最低ライン / 達成目標 / ストレッチ each (those set).
 * The scale is the largest of the actual and the levels; positions are in 0–100.
 */
export function levelBar({ value, levels, pace = 1, labels, format }) {
  const present = LEVELS.filter((level) => levels[level] !== null && levels[level] !== undefined);
  const scale = Math.max(value || 0, ...present.map((level) => levels[level])) || 1;
  const x = (v) => Math.min(100, Math.max(0, (v / scale) * 100));
  const reached = levelReached(value, levels, pace);
  const svg = s('svg', {
    class: 'levels',
    viewBox: '0 0 100 12',
    preserveAspectRatio: 'none',
    role: 'img',
    'data-reached': reached,
    'data-scale': scale,
    'data-pace': pace,
  });
  const text = present.map((level) => `${labels[level]} ${format(levels[level])}`).join(' \u00b7 ');
  svg.append(
    s('title', {}, `${labels.actual} ${format(value)}${text ? ` \u2014 ${text}` : ''}`),
    s('rect', { x: 0, y: 3, width: 100, height: 6, class: 'track' }),
    s('rect', { x: 0, y: 3, width: x(value || 0), height: 6, class: `fill reached-${reached}` }),
  );
  if (pace < 1 && levels.achievement !== null && levels.achievement !== undefined) {
    const px = x(levels.achievement * pace);
    svg.append(s('line', { x1: px, x2: px, y1: 1, y2: 11, class: 'pace', 'vector-effect': 'non-scaling-stroke' }));
  }
  for (const level of present) {
    const tx = x(levels[level]);
    svg.append(
      s('line', {
        x1: tx,
        x2: tx,
        y1: 0,
        y2: 12,
        class: `tick tick-${level}`,
        'data-level': level,
        'data-value': levels[level],
        'vector-effect': 'non-scaling-stroke',
      }),
    );
  }
  return svg;
}
