// SPDX-License-Identifier: GPL-2.0-only
/**
 * The audit as one self-contained HTML page: the rules, a timeline chart of the counters over the run's ops
 * (inline SVG drawn here: no script, no stylesheet or font from anywhere else, so it opens offline in any
 * browser), the broken rules marked at the op where they broke, then the final balances and the ledger.
 *
 * Chart geometry (what the tests measure): one polyline per counter of CHART_COUNTERS, with one point per
 * op of the run (the counter's total at the end of that op), x = opX(op); one `g.violation` per broken
 * rule, its line at x = opX(rule.op). Counters often hold the same value (npinned = last_npinned =
 * pinned_vm when the books balance), so lines are drawn widest first and each thinner one stays visible
 * inside the one below it.
 */
import type { CounterName } from './ledger.js';
import type { RuleResult } from './reconcile.js';
import { CHART_COUNTERS, LEDGER_COLUMNS, ledgerRow, reportVerdict, type AuditReport } from './report.js';
import { maxOf, minOf } from '../lib/arrays.js';

export const CHART = { width: 1100, height: 380, left: 70, right: 30, top: 16, bottom: 50 } as const;
/** Runs of at most this many ops get a marker per op, so a short run's lines read as points, not a smear. */
const MARKED_OPS = 60;
/** Height of one violation label row above the plot. */
const LABEL_ROW = 18;

/** Drawing order, widest first; colours and widths by counter. */
const STYLE: Record<CounterName, { color: string; width: number; order: number }> = {
  pins: { color: '#2ca02c', width: 12, order: 0 },
  'mm.pinned_vm': { color: '#ff7f0e', width: 10, order: 1 },
  'user.locked_vm': { color: '#d62728', width: 8, order: 2 },
  'mm.locked_vm': { color: '#9467bd', width: 6, order: 3 },
  last_npinned: { color: '#17becf', width: 4, order: 4 },
  npinned: { color: '#1f4e9c', width: 2, order: 5 },
};

/** Coordinates are written with two decimals. */
const fmt = (n: number): string => String(Math.round(n * 100) / 100);

/** x of an op on the chart, for ops firstOp..lastOp. */
export function opX(op: number, firstOp: number, lastOp: number): number {
  const plot = CHART.width - CHART.left - CHART.right;
  const span = Math.max(1, lastOp - firstOp);
  return Math.round((CHART.left + ((op - firstOp) * plot) / span) * 100) / 100;
}

export interface ChartSeries {
  counter: CounterName;
  /** One point per op of the run, in op order. */
  points: { op: number; value: number }[];
}

/** Each counter's total at the end of every op (carried forward from its last change). */
export function chartSeries(report: AuditReport): ChartSeries[] {
  const byCounter = new Map<CounterName, Map<number, number>>();
  for (const s of report.series) {
    let m = byCounter.get(s.counter);
    if (m === undefined) byCounter.set(s.counter, (m = new Map<number, number>()));
    m.set(s.op, s.value);
  }
  return CHART_COUNTERS.map((counter) => {
    const changes = byCounter.get(counter) ?? new Map<number, number>();
    let value = 0;
    return {
      counter,
      points: report.ops.map((o) => ({ op: o.index, value: (value = changes.get(o.index) ?? value) })),
    };
  });
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);

/** Up to `n` round tick values from lo to hi. */
function ticks(lo: number, hi: number, n: number): number[] {
  const span = Math.max(1, hi - lo);
  const raw = span / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const step1 = Math.max(1, Math.round(step));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step1) * step1; v <= hi; v += step1) out.push(v);
  return out;
}

function chartSvg(report: AuditReport): string {
  const series = chartSeries(report);
  const broken = report.rules.filter((r): r is RuleResult & { op: number } => !r.ok && r.op !== null);
  // Each broken rule gets its own label row above the plot, so labels of nearby ops never overlap.
  const top = CHART.top + broken.length * LABEL_ROW;
  const height = CHART.height + broken.length * LABEL_ROW;
  const first = report.ops[0]?.index ?? 0;
  const last = report.ops[report.ops.length - 1]?.index ?? 0;
  const values = series.flatMap((s) => s.points.map((p) => p.value));
  const yMin = minOf(values, 0);
  const yMax = maxOf(values, 1);
  const plotH = CHART.height - CHART.top - CHART.bottom;
  const y = (v: number): number => top + ((yMax - v) * plotH) / (yMax - yMin);
  const x = (op: number): number => opX(op, first, last);
  const bottom = top + plotH;
  const right = CHART.width - CHART.right;

  const out: string[] = [];
  out.push(
    `<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="${CHART.width}" height="${height}" viewBox="0 0 ${CHART.width} ${height}" role="img" aria-label="counters over the run's operations">`,
  );
  out.push(
    `<rect x="${CHART.left}" y="${top}" width="${right - CHART.left}" height="${plotH}" fill="#fbfbfb" stroke="#ccc"/>`,
  );
  for (const v of ticks(yMin, yMax, 5)) {
    out.push(
      `<line class="grid" x1="${CHART.left}" x2="${right}" y1="${fmt(y(v))}" y2="${fmt(y(v))}" stroke="#e4e4e4"/>`,
    );
    out.push(`<text x="${CHART.left - 8}" y="${fmt(y(v) + 4)}" text-anchor="end" font-size="12">${v}</text>`);
  }
  for (const op of ticks(first, last, 10)) {
    out.push(`<line x1="${fmt(x(op))}" x2="${fmt(x(op))}" y1="${bottom}" y2="${bottom + 5}" stroke="#555"/>`);
    out.push(`<text x="${fmt(x(op))}" y="${bottom + 18}" text-anchor="middle" font-size="12">${op}</text>`);
  }
  out.push(
    `<text x="${fmt((CHART.left + right) / 2)}" y="${height - 8}" text-anchor="middle" font-size="13">op</text>`,
  );
  out.push(
    `<text x="16" y="${fmt(top + plotH / 2)}" text-anchor="middle" font-size="13" transform="rotate(-90 16 ${fmt(top + plotH / 2)})">pages</text>`,
  );

  const drawn = [...series].sort((a, b) => STYLE[a.counter].order - STYLE[b.counter].order);
  const markers = report.ops.length <= MARKED_OPS;
  for (const s of drawn) {
    const st = STYLE[s.counter];
    const points = s.points.map((p) => `${fmt(x(p.op))},${fmt(y(p.value))}`).join(' ');
    out.push(
      `<polyline class="series" data-counter="${s.counter}" points="${points}" fill="none" stroke="${st.color}" stroke-width="${st.width}" stroke-linejoin="round" stroke-linecap="round" opacity="0.9"><title>${s.counter}</title></polyline>`,
    );
    if (markers) {
      for (const p of s.points) {
        out.push(
          `<circle class="point" data-counter="${s.counter}" cx="${fmt(x(p.op))}" cy="${fmt(y(p.value))}" r="${fmt(st.width / 2 + 2)}" fill="${st.color}"><title>${s.counter} = ${p.value} after op ${p.op}</title></circle>`,
        );
      }
    }
  }
  if (values.every((v) => v === 0)) {
    out.push(
      `<text class="flat" x="${fmt((CHART.left + right) / 2)}" y="${fmt(top + plotH / 2)}" text-anchor="middle" font-size="14" fill="#555">no counter moved in this run: every counter stays at 0 through its ${report.ops.length} ops</text>`,
    );
  }

  broken.forEach((r, row) => {
    const vx = x(r.op);
    const labelY = CHART.top + row * LABEL_ROW + 12;
    const anchor = vx > (CHART.left + right) / 2 ? 'end' : 'start';
    const dx = anchor === 'end' ? -9 : 9;
    out.push(
      `<g class="violation" data-rule="${r.rule}" data-op="${r.op}" data-x="${fmt(vx)}">` +
        `<title>${escapeHtml(`${r.rule} broke at op ${r.op} (line ${r.line ?? '-'}): ${r.detail ?? ''}`)}</title>` +
        `<line x1="${fmt(vx)}" x2="${fmt(vx)}" y1="${fmt(labelY - 4)}" y2="${bottom}" stroke="#c00000" stroke-width="2" stroke-dasharray="6 4"/>` +
        `<circle cx="${fmt(vx)}" cy="${fmt(labelY - 4)}" r="6" fill="#c00000"/>` +
        `<text x="${fmt(vx + dx)}" y="${fmt(labelY)}" text-anchor="${anchor}" font-size="12" fill="#c00000" font-weight="bold">${escapeHtml(`${r.rule} at op ${r.op}, line ${r.line ?? '-'}`)}</text>` +
        `</g>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}

function legend(): string {
  return CHART_COUNTERS.map(
    (c) =>
      `<span class="key"><svg width="28" height="12"><line x1="2" x2="26" y1="6" y2="6" stroke="${STYLE[c].color}" stroke-width="${Math.min(8, STYLE[c].width)}" stroke-linecap="round"/></svg>${c}</span>`,
  ).join('\n');
}

function rulesTable(rules: readonly RuleResult[]): string {
  const rows = rules.map((r) => {
    const events = r.events.map(
      (e) =>
        `<li>event ${e.seq} ${escapeHtml(e.type)}${e.fn !== null ? ` in ${escapeHtml(e.fn)}` : ''}: ${escapeHtml(e.text)}</li>`,
    );
    if (r.moreEvents > 0) events.push(`<li>and ${r.moreEvents} more events of that op</li>`);
    const what = r.ok
      ? escapeHtml(r.skipped !== null ? `not checked: ${r.skipped}` : r.description)
      : `${escapeHtml(r.detail ?? '')}${events.length ? `<ul>${events.join('')}</ul>` : ''}`;
    return `<tr class="${r.ok ? 'ok' : 'broken'}"><td>${r.ok ? 'ok' : 'BROKEN'}</td><td>${escapeHtml(r.rule)}</td><td>${r.op ?? ''}</td><td>${r.line ?? ''}</td><td>${escapeHtml(r.opName ?? '')}</td><td>${what}</td></tr>`;
  });
  return `<table class="rules"><thead><tr><th></th><th>rule</th><th>op</th><th>line</th><th>operation</th><th>what</th></tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}

const STYLESHEET = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #555; margin-bottom: 12px; }
.verdict { font-weight: bold; padding: 6px 10px; display: inline-block; border-radius: 4px; }
.verdict.ok { background: #e3f4e3; color: #1b5e20; }
.verdict.broken { background: #fde2e2; color: #8b0000; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; position: sticky; top: 0; }
tr.broken td { background: #fff0f0; }
tr.broken td:first-child { color: #c00000; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.at-break td { background: #fff6d6; }
ul { margin: 4px 0 0; padding-left: 18px; }
.key { margin-right: 16px; white-space: nowrap; }
.key svg { vertical-align: middle; margin-right: 4px; }
`;

/** The whole page. */
export function renderAuditHtml(report: AuditReport): string {
  const broken = report.rules.filter((r) => !r.ok);
  const breakOps = new Set(broken.map((r) => r.op));
  const filter = [
    report.filter.user !== undefined ? `user ${report.filter.user}` : '',
    report.filter.pid !== undefined ? `pid ${report.filter.pid}` : '',
    report.filter.pages !== undefined ? `iopt_pages ${report.filter.pages}` : '',
  ].filter((s) => s !== '');
  const numeric = new Set(['seq', 'op', 'line', 'owner', 'pages', 'delta', 'value']);
  const ledgerRows = report.ledger.map((l) => {
    const cells = ledgerRow(l).map(
      (c, i) => `<td${numeric.has(LEDGER_COLUMNS[i] ?? '') ? ' class="num"' : ''}>${escapeHtml(c)}</td>`,
    );
    return `<tr${breakOps.has(l.op) ? ' class="at-break"' : ''}>${cells.join('')}</tr>`;
  });
  const finalRows = report.final.map(
    (c) =>
      `<tr><td>${c.counter}</td><td class="num">${c.owner ?? '-'}</td><td class="num">${c.value}</td><td class="num">${c.op}</td></tr>`,
  );
  const title = `ioptrace audit: run ${report.run}`;
  const verdict = reportVerdict(report);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLESHEET}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="meta">${escapeHtml(report.tracePath)} on <b>${escapeHtml(report.variant)}</b> (${report.flags.length} fix flags), ${report.ops.length} ops, status ${escapeHtml(report.status)}${filter.length ? `; ledger and chart of ${escapeHtml(filter.join(', '))}` : ''}</div>
<div class="verdict ${verdict.ok ? 'ok' : 'broken'}">${escapeHtml(verdict.text)}</div>
<h2>Counters over the run</h2>
<div class="legend">${legend()}</div>
${chartSvg(report)}
<h2>Reconciliation</h2>
${rulesTable(report.rules)}
<h2>Final balances</h2>
<table class="final"><thead><tr><th>counter</th><th>owner</th><th>value</th><th>last op</th></tr></thead><tbody>
${finalRows.join('\n')}
</tbody></table>
<h2>Ledger (${report.ledger.length} lines)</h2>
<table class="ledger"><thead><tr>${LEDGER_COLUMNS.map((c) => `<th>${c}</th>`).join('')}</tr></thead><tbody>
${ledgerRows.join('\n')}
</tbody></table>
</body>
</html>
`;
}
