// SPDX-License-Identifier: GPL-2.0-only
/**
 * Bisect reports as text a person reads, and as the plain data `--json` prints. Both are built from the
 * report objects only (no store access), so tests render what they computed.
 */
import { decodeJson, encodeJson } from '../lib/codec.js';
import { pushAll } from '../lib/arrays.js';
import { variantLabel } from '../kernel/variant-spec.js';
import type { Difference } from '../state/diff.js';
import { formatValue, renderDifference } from '../state/diff.js';
import type { FixBisectReport, Flip, FoundFinding, Outcome } from './bisect-fix.js';
import type { BisectReport, RunSide, TraceBisectReport } from './bisect-runs.js';
import type { Divergence, OpSide } from './divergence.js';
import { pfnRangesText } from './effects.js';
import type { NamedObjects, SideBySideRow } from './effects.js';
import type { ObservedReport } from './observed.js';

/** Rows of events printed side by side unless asked for more. */
export const DEFAULT_EVENT_ROWS = 60;
/** Rows of events in `--json`: an op with more is cut, and says so. */
const JSON_EVENT_ROWS = 5000;
/** Divergence ranges listed in text. */
const RANGES_SHOWN = 12;
const COLUMN = 64;

function clip(text: string, width: number): string {
  return text.length <= width ? text.padEnd(width) : `${text.slice(0, width - 1)}…`;
}

/** An op's errno and outputs: `EFAULT`, `ok iova 0x2000000`. */
function resultText(errno: string | null, result: string): string {
  let outputs: unknown;
  try {
    outputs = decodeJson(result);
  } catch {
    outputs = result;
  }
  const fields =
    typeof outputs === 'object' && outputs !== null
      ? Object.entries(outputs).map(([k, v]) => `${k} ${formatValue(v, k)}`)
      : [String(result)];
  return [errno ?? 'ok', ...fields].join(' ');
}

/** A run's variant as a spec: the name it was recorded under, with the flags that differ from that name's. */
function variantText(side: RunSide): string {
  return variantLabel(side.variant, side.flags);
}

function runLabel(side: RunSide): string {
  const plan =
    side.faultPlan === null || side.faultPlan === undefined ? '' : `, fault plan ${encodeJson(side.faultPlan)}`;
  return `run ${side.run} (${variantText(side)}${plan})`;
}

/** The objects a divergence names, as one line per kind; nothing for an empty kind. */
export function namedLines(named: NamedObjects): string[] {
  const out: string[] = [];
  if (named.allocations.length) out.push(`heap allocations: ${named.allocations.join(', ')}`);
  if (named.mms.length) out.push(`mms: ${named.mms.join(', ')}`);
  if (named.pfns.length) out.push(`PFNs: ${pfnRangesText(named.pfns).join(', ')}`);
  if (named.pages.length) out.push(`iopt_pages: ${named.pages.join(', ')}`);
  if (named.areas.length) out.push(`areas: ${named.areas.join(', ')}`);
  if (named.domains.length) out.push(`domains: ${named.domains.join(', ')}`);
  if (named.counters.length) out.push(`counters: ${named.counters.join(', ')}`);
  return out;
}

/**
 * Events side by side: rows in step as they are; a block of one-sided rows is zipped so that what run A did
 * instead stands beside what run B did.
 */
export function sideBySideLines(rows: readonly SideBySideRow[], max: number): string[] {
  const out: string[] = [];
  let i = 0;
  let cut = false;
  while (i < rows.length && !cut) {
    const row = rows[i] as SideBySideRow;
    if (row.mark === '=') {
      if (out.length >= max) cut = true;
      else out.push(`  ${clip(`= ${row.a ?? ''}`, COLUMN + 2)} | ${row.b ?? ''}`);
      i++;
      continue;
    }
    const left: string[] = [];
    const right: string[] = [];
    while (i < rows.length && (rows[i] as SideBySideRow).mark !== '=') {
      const r = rows[i] as SideBySideRow;
      if (r.a !== null) left.push(`${r.mark === '~' ? '~' : '<'} ${r.a}`);
      if (r.b !== null) right.push(`${r.mark === '~' ? '~' : '>'} ${r.b}`);
      i++;
    }
    for (let k = 0; k < Math.max(left.length, right.length); k++) {
      if (out.length >= max) {
        cut = true;
        break;
      }
      out.push(`  ${clip(left[k] ?? '', COLUMN + 2)} | ${right[k] ?? ''}`);
    }
  }
  if (cut) out.push(`  ... cut at ${max} lines of ${rows.length} events rows (--events N shows more)`);
  return out;
}

function divergenceLines(d: Divergence, a: string, b: string, eventRows: number): string[] {
  const lines = [
    `first divergence: op ${d.op}, line ${d.line}${d.b.line !== d.a.line ? ` (line ${d.b.line} in run B's trace)` : ''} (${d.name}): ${d.differs.join(', ')} differ${d.differs.length === 1 ? 's' : ''}`,
    `  ${a}: ${resultText(d.a.errno, d.a.result)}, digest ${d.a.digest}, ${d.a.events} events`,
    `  ${b}: ${resultText(d.b.errno, d.b.result)}, digest ${d.b.digest}, ${d.b.events} events`,
  ];
  if (d.diff.lines.length) {
    lines.push(`state just after the op (${a} -> ${b}):`);
    for (const l of d.diff.lines) lines.push(`  ${l}`);
  } else lines.push('state just after the op: equal (only the result differs)');
  if (d.diff.uncounted.length) {
    lines.push('not counted (outside the digest, or derived from the variant: see bisect --help):');
    for (const x of d.diff.uncounted) lines.push(`  ${renderDifference(x)}`);
  }
  if (d.diff.provenance.length) {
    lines.push('provenance (the same allocations, made by differently named code; not counted):');
    for (const x of d.diff.provenance) lines.push(`  ${renderDifference(x)}`);
  }
  const named = namedLines(d.diff.named);
  if (named.length) {
    lines.push('names:');
    for (const l of named) lines.push(`  ${l}`);
  }
  lines.push(`events of op ${d.op} (${a} | ${b}; = both, < only ${a}, > only ${b}, ~ both but in another order):`);
  pushAll(lines, sideBySideLines(d.events.rows, eventRows));
  return lines;
}

function rangesText(ranges: readonly [number, number][]): string {
  const shown = ranges.slice(0, RANGES_SHOWN).map(([f, l]) => (f === l ? `${f}` : `${f}..${l}`));
  return `${shown.join(', ')}${ranges.length > RANGES_SHOWN ? `, ... (${ranges.length} stretches)` : ''}`;
}

/** `bisect RUN_A RUN_B` (and `bisect TRACE --variants`) as text. */
export function renderBisect(report: BisectReport | TraceBisectReport, eventRows = DEFAULT_EVENT_ROWS): string[] {
  const a = runLabel(report.a);
  const b = runLabel(report.b);
  const lines: string[] = [];
  if ('recorded' in report) {
    lines.push(
      `recorded run ${report.recorded[0].run} (${report.recorded[0].variant}) and run ${report.recorded[1].run} (${report.recorded[1].variant})`,
    );
  }
  lines.push(
    `bisect ${a} vs ${b}, ${report.a.tracePath}: ${report.compared} ops compared${report.strict ? ' (strict)' : ''}`,
  );
  for (const note of report.notes) lines.push(`note: ${note}`);
  const d = report.divergence;
  if (d === null) {
    lines.push('no divergence: every compared op leaves equal states with equal results');
    return lines;
  }
  pushAll(lines, divergenceLines(d, `run ${report.a.run}`, `run ${report.b.run}`, eventRows));
  lines.push(`differing ops: ${rangesText(report.ranges)} (${report.differingOps} of ${report.compared})`);
  return lines;
}

function differenceJson(d: Difference): Record<string, unknown> {
  return {
    table: d.table,
    key: d.key,
    path: d.path,
    at: d.at,
    a: d.a ?? null,
    b: d.b ?? null,
    text: renderDifference(d),
  };
}

/** An op side with its outputs as data (JSON prints their bigints as decimal strings). */
function sideJson(side: OpSide): Record<string, unknown> {
  let result: unknown;
  try {
    result = decodeJson(side.result);
  } catch {
    result = side.result;
  }
  return { ...side, result };
}

export function divergenceJson(d: Divergence): Record<string, unknown> {
  return {
    op: d.op,
    line: d.line,
    name: d.name,
    differs: d.differs,
    a: sideJson(d.a),
    b: sideJson(d.b),
    diff: {
      state: d.diff.state.map(differenceJson),
      uncounted: d.diff.uncounted.map(differenceJson),
      provenance: d.diff.provenance.map(differenceJson),
      onlyA: d.diff.onlyA,
      onlyB: d.diff.onlyB,
      named: d.diff.named,
    },
    events: {
      eventsA: d.events.eventsA,
      eventsB: d.events.eventsB,
      rows: d.events.rows.slice(0, JSON_EVENT_ROWS),
      truncated: d.events.rows.length > JSON_EVENT_ROWS,
    },
  };
}

/** `bisect --json`: `op`, `line` and `diff` at the top (null when the runs agree). */
export function bisectJson(report: BisectReport | TraceBisectReport): Record<string, unknown> {
  const d = report.divergence === null ? null : divergenceJson(report.divergence);
  return {
    ...('recorded' in report ? { recorded: report.recorded } : {}),
    runs: { a: report.a, b: report.b },
    align: report.align,
    strict: report.strict,
    compared: report.compared,
    commonTraceOps: report.commonTraceOps,
    diverged: d !== null,
    op: d?.['op'] ?? null,
    line: d?.['line'] ?? null,
    name: d?.['name'] ?? null,
    differs: d?.['differs'] ?? null,
    a: d?.['a'] ?? null,
    b: d?.['b'] ?? null,
    diff: d?.['diff'] ?? null,
    events: d?.['events'] ?? null,
    ranges: report.ranges,
    differingOps: report.differingOps,
    notes: report.notes,
  };
}

// ---- fix bisect ---------------------------------------------------------------------------------------------

function outcomeText(o: Outcome): string {
  return `${o.findings.length} findings, ${o.mismatches.length} mismatches, digest ${o.digest}`;
}

/** A sorted list with repeats as `item (xN)`. */
function counted(items: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length;) {
    let j = i;
    while (j < items.length && items[j] === items[i]) j++;
    out.push(j - i > 1 ? `${items[i] ?? ''} (x${j - i})` : (items[i] ?? ''));
    i = j;
  }
  return out;
}

function flipLines(f: Flip): string[] {
  const lines = [
    `${f.action === 'add' ? 'adding' : 'removing'} ${f.flag} (step ${f.k}) changes the outcome`,
    `  commit ${f.commit}, first in ${f.release}, spec section ${f.section}: ${f.summary}`,
    f.op === null
      ? '  no op differs (only the outcome summary does)'
      : `  at op ${f.op}, line ${f.line} (${f.opName}): the first op where the two variants disagree`,
  ];
  if (f.completesMerged) {
    lines.push(
      '  this step also completes the pre-merge flags: the unflagged [merged] behaviour turns on with it and may be the cause',
    );
  }
  const c = f.change;
  for (const x of counted(c.findingsGone)) lines.push(`  - ${x}`);
  for (const x of counted(c.findingsNew)) lines.push(`  + ${x}`);
  for (const x of counted(c.mismatchesGone)) lines.push(`  - mismatch ${x}`);
  for (const x of counted(c.mismatchesNew)) lines.push(`  + mismatch ${x}`);
  if (c.digestBefore !== c.digestAfter) lines.push(`  final digest ${c.digestBefore} -> ${c.digestAfter}`);
  if (f.divergence !== null) {
    for (const l of f.divergence.diff.lines) lines.push(`  ${l}`);
    for (const l of namedLines(f.divergence.diff.named)) lines.push(`  ${l}`);
  }
  return lines;
}

function foundText(f: FoundFinding): string {
  return `${f.finding}${f.occurrence > 0 ? ` #${f.occurrence + 1}` : ''} (line ${f.line}, op ${f.op})`;
}

/** The headline answer, then every finding of the bad run with the flag that removes it, then those introduced. */
function attributionLines(report: FixBisectReport): string[] {
  const lines: string[] = [];
  const a = report.answer;
  if (a !== null) {
    lines.push(
      `fixed by: ${a.flag} (${a.commit}, ${a.release}, spec ${a.section}): it removes the bad run's first ${a.removes.violation ? 'violation' : 'finding'}, ${foundText(a.removes)}`,
    );
  } else if (report.outcomeBad.ordered.length > 0) {
    lines.push("no flag removes the bad run's first finding: the good variant has it too");
  }
  if (report.removed.length > 0) {
    lines.push('findings of the bad run, and the flag that removes each:');
    for (const r of report.removed) lines.push(`  ${foundText(r)}: ${r.flag ?? 'not removed (good has it too)'}`);
  }
  if (report.introduced.length > 0) {
    lines.push('findings introduced along the walk, and the flag that introduced each:');
    for (const r of report.introduced) lines.push(`  ${foundText(r)}: ${r.flag ?? '-'}`);
  }
  return lines;
}

export function renderBisectFix(report: FixBisectReport, tracePath: string): string[] {
  const lines = [
    `bisect-fix ${tracePath}: bad ${report.bad.variant} -> good ${report.good.variant}, ${report.steps.length} flags in upstream order, ${report.replays} replays${report.exhaustive ? ' (every step)' : ''}`,
    `  bad:  ${outcomeText(report.outcomeBad)}`,
    `  good: ${outcomeText(report.outcomeGood)}`,
  ];
  pushAll(lines, attributionLines(report));
  if (report.flips.length === 0) {
    lines.push(
      report.steps.length === 0
        ? 'the two variants have the same flags'
        : 'no flag changes the outcome: bad and good have the same outcome',
    );
    if (!report.exhaustive) lines.push('(a change undone by a later flag is only seen with --all)');
    return lines;
  }
  const [first, ...rest] = report.flips as [Flip, ...Flip[]];
  lines.push(`first flag that changes the outcome: ${first.flag} (${first.commit}), line ${first.line ?? '-'}`);
  pushAll(lines, flipLines(first));
  if (rest.length) {
    lines.push(
      `not monotonic: the outcome changes ${report.flips.length} times along the flag order${report.exhaustive ? '' : ' (at least; --all replays every step)'}:`,
    );
    for (const f of rest) pushAll(lines, flipLines(f));
  } else if (!report.exhaustive) {
    lines.push('one change found by bisection (--all replays every step to rule out changes that undo each other)');
  }
  return lines;
}

function flipJson(f: Flip): Record<string, unknown> {
  return {
    flag: f.flag,
    action: f.action,
    step: f.k,
    commit: f.commit,
    release: f.release,
    section: f.section,
    summary: f.summary,
    op: f.op,
    line: f.line,
    opName: f.opName,
    completesMerged: f.completesMerged,
    change: f.change,
    ...(f.divergence === null ? {} : { divergence: divergenceJson(f.divergence) }),
  };
}

/** `bisect-fix --json`: the first flip's `flag`, `commit`, `line` at the top, and every flip found. */
export function bisectFixJson(report: FixBisectReport): Record<string, unknown> {
  const first = report.flips[0];
  // The headline is the flag that removes the bad run's first violation; without one, the first change.
  const head = report.answer ?? first;
  return {
    flag: head?.flag ?? null,
    commit: head?.commit ?? null,
    release: head?.release ?? null,
    section: head?.section ?? null,
    op: head?.op ?? null,
    line: head?.line ?? null,
    opName: head?.opName ?? null,
    answer: report.answer,
    firstChange: first?.flag ?? null,
    removed: report.removed,
    introduced: report.introduced,
    monotonic: report.monotonic,
    exhaustive: report.exhaustive,
    flips: report.flips.map(flipJson),
    good: report.good,
    bad: report.bad,
    steps: report.steps.map((s) => ({ flag: s.flag.name, action: s.action })),
    outcomeBad: report.outcomeBad,
    outcomeGood: report.outcomeGood,
    replays: report.replays,
  };
}

// ---- observations -------------------------------------------------------------------------------------------

export function renderObserved(report: ObservedReport, tracePath: string, variant: string): string[] {
  const lines = [
    `observed ${tracePath} on ${variant}: ${report.observations} observations on ${report.opsObserved} ops`,
  ];
  if (report.first === null) {
    lines.push('the model matches every observation');
    return lines;
  }
  const f = report.first;
  lines.push(`first divergence from the recording: op ${f.op}, line ${f.line} (${f.name}), ${f.kind}`);
  for (const d of report.divergences) {
    lines.push(`line ${d.line} (${d.name}) ${d.kind}:`);
    lines.push(`  kernel: ${d.observed.length ? d.observed.join('; ') : '(nothing)'}`);
    lines.push(`  model:  ${d.model.length ? d.model.join('; ') : '(nothing)'}`);
  }
  return lines;
}

export function observedJson(report: ObservedReport): Record<string, unknown> {
  return {
    diverged: report.first !== null,
    op: report.first?.op ?? null,
    line: report.first?.line ?? null,
    kind: report.first?.kind ?? null,
    observed: report.first?.observed ?? null,
    model: report.first?.model ?? null,
    divergences: report.divergences,
    opsObserved: report.opsObserved,
    observations: report.observations,
  };
}
