// SPDX-License-Identifier: GPL-2.0-only
/**
 * The compact form of a batch of traces, for the trace runner (native/export-c/runner.c): one static binary
 * in the VM reads many traces from one file and performs each as the program `export-c` writes for it would,
 * so a boot runs hundreds of traces without a compiler in the loop.
 *
 * The form carries the exporter's op table (export-c.ts exportOps), not the trace: the decisions of who issues
 * an op and which slot an object has are made once, in TypeScript, for both programs. Text, one record a line,
 * fields separated by one space:
 *
 *   ioptrace-batch 1
 *   T NAME OPS                      a trace: its name ([A-Za-z0-9._-]+) and op count; its OPS op lines follow
 *   O KIND LINE NAME CALLER A B X Y Z FLAGS N RANGES DOMAINS TEXT
 *   E                               the end of the trace
 *
 * KIND is a runtime.c kind name (K_MMAP...); LINE, CALLER, A, B, FLAGS and N are decimal; X, Y and Z are hex
 * (no 0x, two's complement for 64 bits); RANGES is `-` or `START:LAST,...` in hex; DOMAINS is `-` or decimal
 * slots joined by commas; TEXT, the rest of the line, is `-` or the op's text (hex data, or the reason an op is
 * not exportable). The runner prints, for each trace, the program's JSON lines between `{"begin":NAME,...}` and
 * `{"end":NAME}` and then one status line of its own: `{"runner":"exit","trace":NAME,"status":N}`, or
 * `"signal"` with the signal number, or `"timeout"` (killed after the per-trace limit); see parseRunnerOutput.
 */
import { U64_MAX } from '../events/trace.js';
import type { COp, OpRow } from './export-c.js';
import { OP_KINDS } from './export-c.js';

export const COMPACT_MAGIC = 'ioptrace-batch 1';

export interface CompactTrace {
  name: string;
  rows: readonly OpRow[];
}

const NAME = /^[A-Za-z0-9._-]+$/;
const hex = (v: bigint): string => (v & U64_MAX).toString(16);

function checkName(name: string, what: string): void {
  if (!NAME.test(name)) throw new Error(`${what} "${name}" is not a compact-form name ([A-Za-z0-9._-]+)`);
}

/** One op line of the compact form. */
export function encodeRow(row: OpRow): string {
  const c = row.op;
  checkName(row.name, 'op name');
  const ranges = c.ranges === null ? '-' : c.ranges.map(([s, l]) => `${hex(s)}:${hex(l)}`).join(',') || '-';
  const domains = c.domains === null || c.domains.length === 0 ? '-' : c.domains.join(',');
  if (c.text !== null && (c.text === '' || /[\n\r]/.test(c.text)))
    throw new Error(`op ${row.index}: its text cannot be carried on one compact-form line`);
  return [
    'O',
    c.kind,
    row.line,
    row.name,
    c.caller,
    c.a,
    c.b,
    hex(c.x),
    hex(c.y),
    hex(c.z),
    c.flags,
    c.n,
    ranges,
    domains,
    c.text ?? '-',
  ].join(' ');
}

/** The batch file of `traces`, in order. */
export function encodeBatch(traces: readonly CompactTrace[]): string {
  const out = [COMPACT_MAGIC];
  const seen = new Set<string>();
  for (const t of traces) {
    checkName(t.name, 'trace name');
    if (seen.has(t.name)) throw new Error(`trace "${t.name}" is twice in the batch`);
    seen.add(t.name);
    out.push(`T ${t.name} ${t.rows.length}`);
    for (const row of t.rows) out.push(encodeRow(row));
    out.push('E');
  }
  return `${out.join('\n')}\n`;
}

/** Parse a batch file back (the runner's --dump prints what it parsed in this same form). */
export function decodeBatch(text: string): CompactTrace[] {
  const lines = text.split('\n');
  if (lines[0] !== COMPACT_MAGIC) throw new Error(`line 1: expected "${COMPACT_MAGIC}", got "${lines[0] ?? ''}"`);
  const traces: { name: string; rows: OpRow[]; ops: number }[] = [];
  let current: { name: string; rows: OpRow[]; ops: number } | null = null;
  lines.slice(1).forEach((line, i) => {
    const at = `line ${i + 2}`;
    if (line === '') return;
    if (line.startsWith('T ')) {
      const [, name, ops] = line.split(' ');
      if (current !== null) throw new Error(`${at}: trace "${name ?? ''}" starts before "${current.name}" ended`);
      if (name === undefined || ops === undefined || !/^\d+$/.test(ops)) throw new Error(`${at}: bad trace line`);
      current = { name, rows: [], ops: Number(ops) };
      return;
    }
    if (current === null) throw new Error(`${at}: a record outside a trace`);
    if (line === 'E') {
      if (current.rows.length !== current.ops)
        throw new Error(
          `${at}: trace "${current.name}" has ${current.rows.length} op lines, its head says ${current.ops}`,
        );
      traces.push(current);
      current = null;
      return;
    }
    current.rows.push(decodeRow(line, current.rows.length + 1, at));
  });
  if (current !== null) throw new Error(`the batch ends inside trace "${(current as { name: string }).name}"`);
  return traces.map(({ name, rows }) => ({ name, rows }));
}

function decodeRow(line: string, index: number, at: string): OpRow {
  const f = line.split(' ');
  if (f.length < 15 || f[0] !== 'O') throw new Error(`${at}: an op line has 15 fields, this has ${f.length}`);
  const field = (i: number): string => f[i] ?? '';
  const kind = OP_KINDS.find((k) => k === field(1));
  if (kind === undefined) throw new Error(`${at}: field KIND: unknown kind "${field(1)}"`);
  const dec = (i: number, name: string): number => {
    if (!/^-?\d+$/.test(field(i))) throw new Error(`${at}: field ${name}: "${field(i)}" is not a decimal number`);
    return Number(field(i));
  };
  const big = (i: number, name: string): bigint => {
    if (!/^[0-9a-f]{1,16}$/.test(field(i))) throw new Error(`${at}: field ${name}: "${field(i)}" is not hex`);
    return BigInt(`0x${field(i)}`);
  };
  const rangesText = field(12);
  const ranges =
    rangesText === '-'
      ? null
      : rangesText.split(',').map((r): [bigint, bigint] => {
          const [s, l] = r.split(':');
          if (s === undefined || l === undefined) throw new Error(`${at}: field RANGES: bad range "${r}"`);
          return [BigInt(`0x${s}`), BigInt(`0x${l}`)];
        });
  const domainsText = field(13);
  const domains = domainsText === '-' ? null : domainsText.split(',').map(Number);
  const text = f.slice(14).join(' ');
  const op: COp = {
    kind,
    caller: dec(4, 'CALLER'),
    a: dec(5, 'A'),
    b: dec(6, 'B'),
    x: big(7, 'X'),
    y: big(8, 'Y'),
    z: big(9, 'Z'),
    flags: dec(10, 'FLAGS'),
    text: text === '-' ? null : text,
    ranges,
    n: dec(11, 'N'),
    domains,
  };
  return { index, line: dec(2, 'LINE'), name: field(3), op };
}

/** What the runner printed for one trace. */
export interface RunnerTrace {
  name: string;
  /** The program's own lines (begin, ops, kmsg, end), as parseKernelOutput reads them. */
  output: string;
  /** How the trace's process ended: `exit` with its status, `signal` with the signal, or `timeout`. */
  how: 'exit' | 'signal' | 'timeout' | 'unfinished';
  status: number | null;
}

/**
 * Split the runner's stdout into traces. Lines between a trace's begin line and the runner's status line
 * belong to it; a trace whose status line never came (the VM died, or stopped it) is `unfinished`.
 */
export function parseRunnerOutput(text: string): RunnerTrace[] {
  const out: RunnerTrace[] = [];
  let current: { name: string; lines: string[] } | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('{"begin":')) {
      if (current !== null)
        out.push({ name: current.name, output: current.lines.join('\n'), how: 'unfinished', status: null });
      let name = '';
      try {
        name = String((JSON.parse(line) as { begin: unknown }).begin);
      } catch {
        // a begin line cut by a crash: the trace is named by its status line, if any
      }
      current = { name, lines: [line] };
      continue;
    }
    if (line.startsWith('{"runner":')) {
      let obj: { runner?: unknown; trace?: unknown; status?: unknown };
      try {
        obj = JSON.parse(line) as typeof obj;
      } catch {
        continue;
      }
      const how = obj.runner === 'exit' || obj.runner === 'signal' || obj.runner === 'timeout' ? obj.runner : null;
      if (how === null) continue;
      const name = String(obj.trace);
      const lines = current !== null && current.name === name ? current.lines : [];
      out.push({ name, output: lines.join('\n'), how, status: typeof obj.status === 'number' ? obj.status : null });
      current = null;
      continue;
    }
    if (current !== null) current.lines.push(line);
  }
  if (current !== null)
    out.push({ name: current.name, output: current.lines.join('\n'), how: 'unfinished', status: null });
  return out;
}
