// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace kernel run TRACE...`: each trace exported as C (export-c.ts), compiled statically, all of them
 * run in one boot of the ground-truth kernel, and each result compared op by op with the model on the
 * variant of that kernel (v6.12.y: the release plus the backports the package's 6.12.118 carries).
 *
 * Compared per op: the errno; the output the op has (iova of ioas_map / ioas_copy, unmapped of
 * ioas_unmap / vfio_unmap, data of read / access_rw reads); the answer of check_map / check_refs (the
 * kernel's MD_CHECK_MAP / MD_CHECK_REFS against the model's check: pin counts and translations); and the
 * WARN sites by function (leading underscores ignored: an inlined static helper may be named either way).
 * Kernel WARNs after the last op (the program's own teardown: children gone, fds closed) are compared with
 * the model's teardown. Ops after the first op that could not be exported are not compared: the kernel
 * ran a different trace from there on.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VariantSpec } from '../kernel/variants.js';
import type { ParsedTrace } from '../replay/parse.js';
import { replay } from '../replay/replayer.js';
import type { ReplayResult } from '../replay/replayer.js';
import type { NotExportable } from './export-c.js';

/** One op as the exported program printed it. */
export interface KernelOp {
  op: number;
  line: number;
  name: string;
  errno: string | null;
  value: bigint | null;
  data: string | null;
  check: string | null;
  notExportable: string | null;
  /** The WARNING/BUG lines logged while it ran (after it, before the next op). */
  kmsg: string[];
}

export interface KernelOutput {
  ops: KernelOp[];
  /** Reports logged after the last op (the program's teardown). */
  teardown: string[];
  /** The program printed its end line (it did not die part way). */
  ended: boolean;
  /** The runner killed the program after its time limit (an op never returned: a hang, as a rule). */
  timedOut?: boolean;
}

export type DisagreementKind = 'errno' | 'value' | 'data' | 'check' | 'warn' | 'missing';

export interface Disagreement {
  /** Op index, 1-based; ops + 1 for the teardown. */
  op: number;
  line: number | null;
  name: string;
  kind: DisagreementKind;
  kernel: string;
  model: string;
}

export interface TraceComparison {
  ops: number;
  compared: number;
  notExportable: NotExportable[];
  disagreements: Disagreement[];
}

const WARN_SITE = / at [^ ]+:\d+ ([A-Za-z0-9_.]+)\+0x/;
const BUG_SITE = /RIP: [0-9a-f:]*([A-Za-z0-9_.]+)\+0x/;

/** The function a WARNING line names (`... at FILE:LINE fn+0x..`), leading underscores removed. */
export function warnSite(line: string): string {
  const fn = WARN_SITE.exec(line)?.[1] ?? BUG_SITE.exec(line)?.[1] ?? line;
  return fn.replace(/^_+/, '');
}

/** Read the program's stdout (JSON lines; anything else, such as a crash message, is ignored). */
export function parseKernelOutput(text: string): KernelOutput {
  const ops: KernelOp[] = [];
  const teardown: string[] = [];
  let ended = false;
  let total = Number.POSITIVE_INFINITY;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('{')) continue;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (typeof obj['ops'] === 'number') total = obj['ops'];
    if ('end' in obj) ended = true;
    const index = obj['op'];
    if (typeof index !== 'number') continue;
    if (typeof obj['kmsg'] === 'string') {
      const target = index > total ? undefined : ops.find((o) => o.op === index);
      (target ? target.kmsg : teardown).push(obj['kmsg']);
      continue;
    }
    const str = (key: string): string | null => (typeof obj[key] === 'string' ? obj[key] : null);
    const value = str('value');
    const errno = str('errno');
    ops.push({
      op: index,
      line: typeof obj['line'] === 'number' ? obj['line'] : 0,
      name: str('name') ?? '?',
      errno: errno === 'ok' ? null : errno,
      value: value === null ? null : BigInt(value),
      data: str('data'),
      check: str('check'),
      notExportable: str('not_exportable'),
      kmsg: [],
    });
  }
  return { ops, teardown, ended };
}

/** The output of one trace as the runner reports it (runner.ts): its lines, and whether it was killed. */
export function kernelOutputOf(run: { output: string; how: string } | undefined): KernelOutput {
  return { ...parseKernelOutput(run?.output ?? ''), timedOut: run?.how === 'timeout' };
}

const VALUE_FIELD: Readonly<Record<string, string>> = {
  ioas_map: 'iova',
  ioas_copy: 'iova',
  ioas_unmap: 'unmapped',
  vfio_unmap: 'unmapped',
};

const sites = (list: readonly string[]): string => [...list].sort().join(', ') || 'none';

/** Compare the kernel's run of a trace with the model's replay of it. */
export function compareRun(trace: ParsedTrace, kernel: KernelOutput, model: ReplayResult): TraceComparison {
  const n = trace.entries.length;
  const out: Disagreement[] = [];
  const notExportable: NotExportable[] = [];
  let compared = 0;
  let skipped = false;
  for (let i = 1; i <= n; i++) {
    const entry = trace.entries[i - 1];
    const k = kernel.ops.find((o) => o.op === i);
    const m = model.ops.find((o) => o.index === i);
    const name = entry?.op.op ?? '?';
    const line = entry?.line ?? null;
    if (k?.notExportable != null) {
      notExportable.push({ op: i, line: line ?? 0, name, reason: k.notExportable });
      skipped = true;
      continue;
    }
    if (skipped || m === undefined) continue;
    const add = (kind: DisagreementKind, kv: string, mv: string): void => {
      out.push({ op: i, line, name, kind, kernel: kv, model: mv });
    };
    if (k === undefined) {
      // The model's task hangs at this op and the kernel's never returned from it (killed after the time
      // limit): the same answer. Nothing after it ran on either side.
      if (m.errno === 'HUNG' && kernel.timedOut === true) {
        compared++;
        break;
      }
      add('missing', 'no result (the program died before this op)', m.errno ?? 'ok');
      break;
    }
    compared++;
    if (name === 'check_map' || name === 'check_refs') {
      const modelOk = m.outputs['ok'] === true;
      if ((k.check === 'ok') !== modelOk) add('check', k.check ?? '?', modelOk ? 'ok' : 'mismatch');
    } else if ((k.errno ?? 'ok') !== (m.errno ?? 'ok')) {
      add('errno', k.errno ?? 'ok', m.errno ?? 'ok');
    } else if (k.errno === null) {
      const field = VALUE_FIELD[name];
      const mv = field === undefined ? undefined : m.outputs[field];
      if (field !== undefined && k.value !== null && typeof mv === 'bigint' && mv !== k.value)
        add('value', `${field} 0x${k.value.toString(16)}`, `${field} 0x${mv.toString(16)}`);
      const md = m.outputs['data'];
      if (k.data !== null && typeof md === 'string' && md !== k.data) add('data', k.data, md);
    }
    const kw = k.kmsg.map(warnSite);
    const mw = model.warns.filter((w) => w.op === i).map((w) => w.fn.replace(/^_+/, ''));
    if (sites(kw) !== sites(mw)) add('warn', sites(kw), sites(mw));
  }
  if (!skipped && kernel.ended) {
    const kw = kernel.teardown.map(warnSite);
    const mw = model.warns.filter((w) => w.op > n).map((w) => w.fn.replace(/^_+/, ''));
    if (sites(kw) !== sites(mw))
      out.push({ op: n + 1, line: null, name: 'teardown', kind: 'warn', kernel: sites(kw), model: sites(mw) });
  }
  return { ops: n, compared, notExportable, disagreements: out };
}

/** The model's side: an in-memory replay on the variant of the kernel. */
export function modelRun(trace: ParsedTrace, variant: VariantSpec & { label?: string }): ReplayResult {
  return replay(trace, { variant: variant.label ?? variant.variant, fixes: variant.fixes });
}

/**
 * The kernel's results as an observed recording (docs/trace-format.md "Observations"): the trace's own
 * lines, each op followed by `{"observed":"result",...}` and one `{"observed":"warn","site":...}` per WARN;
 * check answers and not-exportable ops as comments. `ioptrace observed` replays it against any variant.
 */
export function observedRecording(traceText: string, trace: ParsedTrace, kernel: KernelOutput, label: string): string {
  const lines = traceText.split('\n');
  const after = new Map<number, string[]>();
  trace.entries.forEach((entry, i) => {
    const k = kernel.ops.find((o) => o.op === i + 1);
    if (k === undefined) return;
    const extra: string[] = [];
    if (k.notExportable !== null) extra.push(`# not exportable, not run on the kernel: ${k.notExportable}`);
    else if (k.check !== null) extra.push(`# kernel check answer: ${k.check}`);
    else {
      const result: Record<string, string> = { observed: 'result', errno: k.errno ?? 'ok' };
      const field = VALUE_FIELD[entry.op.op];
      if (k.errno === null && field !== undefined && k.value !== null) result[field] = `0x${k.value.toString(16)}`;
      if (k.errno === null && k.data !== null) result['data'] = k.data;
      extra.push(JSON.stringify(result));
    }
    for (const w of k.kmsg) extra.push(JSON.stringify({ observed: 'warn', site: warnSite(w) }));
    after.set(entry.line, extra);
  });
  const out: string[] = [];
  lines.forEach((text, i) => {
    out.push(text);
    for (const e of after.get(i + 1) ?? []) out.push(e);
  });
  out.push(`# Observed on ${label} by ioptrace kernel run.`);
  for (const t of kernel.teardown) out.push(`# kernel report after the last op (teardown): ${t}`);
  return out.join('\n');
}

/** Store one recording in `dir` as NAME.observed.jsonl; returns its path. */
export function storeRecording(dir: string, name: string, text: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.observed.jsonl`);
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
  return path;
}

/** The text of a trace line (for reports), or '' when out of range. */
export function traceLine(path: string, line: number | null): string {
  if (line === null) return '';
  return readFileSync(path, 'utf8').split('\n')[line - 1] ?? '';
}
