// SPDX-License-Identifier: GPL-2.0-only
/**
 * Reading a trace (docs/trace-format.md): JSON Lines to a header and a list of ops, each with the
 * observations recorded after it. A trace with any error is refused whole (one TraceError with every issue,
 * up to MAX_TRACE_ISSUES), so nothing of a bad trace is ever replayed or stored.
 *
 * Beyond the schemas, the reader follows the names a trace creates and removes, in order, and refuses a
 * reference to an object that does not exist at that point, unless the op expects an errno (then the kernel
 * is the one meant to refuse it). It also fills in the defaults that depend on earlier lines: the caller
 * `pid` (the first process) and the `ctx` of `ioas_alloc` (the first context).
 *
 * Line rules: lines count from 1, comments and blank lines included. A line whose first non-blank character
 * is `#`, or that is blank, is a comment. The header may be the first non-comment line (not only line 1, so
 * a trace can open with a comment such as a licence line). A UTF-8 byte order mark before line 1 is ignored.
 *
 * Refused whole, beyond the schemas: a trace with no op at all (empty, or only a header, comments and blank
 * lines: replaying it would store a run of setup and teardown that tests nothing); a line that repeats a
 * key (JSON.parse keeps the last one silently, so `"pid":1,"pid":2` would not mean what the author read);
 * bytes that are not UTF-8 (decoding would turn them into U+FFFD, so two different names could collide).
 */

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

import type { z } from 'zod';

import {
  DEFAULT_TRACE_HEADER,
  describeValue,
  KTHREAD,
  OBSERVATION_FIELDS,
  OBSERVATION_KINDS,
  observationSchema,
  TRACE_OP_FIELDS,
  TRACE_OPS,
  settleTraceHeader,
  traceHeaderSchema,
  traceOpSchema,
  V2_FIELDS,
  V2_OPS,
} from '../events/trace.js';
import type {
  Observation,
  ObservationKind,
  TraceHeader,
  TraceOp,
  TraceOpName,
  UnresolvedTraceOp,
} from '../events/trace.js';
import { TraceError, traceErrorMap, traceIssuesFromZod } from './errors.js';
import { duplicateKey } from './json-keys.js';
import { decodeUtf8Trace, firstInvalidUtf8, lineOfOffset, NOT_UTF8, notUtf8Message } from './utf8.js';
import type { KnownFields, TraceIssue } from './errors.js';

/** One op of a trace, with the line it came from and what a real kernel was observed doing during it. */
export interface TraceEntry {
  line: number;
  op: TraceOp;
  observed: Observation[];
}

export interface ParsedTrace {
  /** The header line, or every default when the trace has none. */
  header: TraceHeader;
  entries: TraceEntry[];
  /** SHA-256 (hex) of the exact bytes read. */
  sha256: string;
}

/**
 * A trace checked whole but not held parsed: `entries` parses the ops again, one at a time, each time it is
 * iterated (streamTraceText). A replay of millions of ops then holds the text and one op, not an object per
 * op. It reads exactly as ParsedTrace does: the same reader, so the same entries, issues and header.
 */
export interface StreamedTrace {
  header: TraceHeader;
  entries: Iterable<TraceEntry>;
  sha256: string;
  /** How many ops `entries` yields. */
  opCount: number;
  /** The line of the last op (0 when there is none). */
  lastOpLine: number;
}

/** What a replay reads: a trace parsed whole (small runs, tests) or streamed (long runs). */
export type TraceInput = ParsedTrace | StreamedTrace;

/** How many ops the trace has. */
export function traceOpCount(trace: TraceInput): number {
  return 'opCount' in trace ? trace.opCount : trace.entries.length;
}

/** The line of the trace's last op (0 when there is none). */
export function lastTraceOpLine(trace: TraceInput): number {
  if ('lastOpLine' in trace) return trace.lastOpLine;
  return trace.entries[trace.entries.length - 1]?.line ?? 0;
}

/** Reading stops after this many issues: a trace that broken needs no more detail. */
export const MAX_TRACE_ISSUES = 1000;

/** The message of a trace with no op, for tests and documentation. */
export const NO_OPERATIONS = 'trace has no operations (only a header, comments or blank lines): nothing to replay';

/** The same line breaks as node:readline, so text and file parses agree on line numbers. */
const LINE_BREAK = /\r\n|\n|\r/g;

const PARSE_CONTEXT = { error: traceErrorMap };

/**
 * Parse with zod's compiled fast path, which a custom error map turns off (several times slower); only a
 * line that fails is parsed again with the map, for its messages.
 */
function parseLine<T>(schema: z.ZodType<T>, value: unknown): z.ZodSafeParseResult<T> {
  const fast = schema.safeParse(value);
  return fast.success ? fast : schema.safeParse(value, PARSE_CONTEXT);
}

type Namespace = 'process' | 'ctx' | 'ioas' | 'domain' | 'access' | 'file';

const LABEL: Readonly<Record<Namespace, string>> = {
  process: 'process',
  ctx: 'context',
  ioas: 'IOAS',
  domain: 'domain',
  access: 'access',
  file: 'memfd',
};
const CREATOR: Readonly<Record<Namespace, string>> = {
  process: 'process',
  ctx: 'open',
  ioas: 'ioas_alloc',
  domain: 'domain_attach',
  access: 'access_create',
  file: 'memfd',
};
const REMOVED: Readonly<Record<Namespace, string>> = {
  process: 'removed',
  ctx: 'closed',
  ioas: 'destroyed',
  domain: 'detached',
  access: 'destroyed',
  file: 'closed',
};

interface NameRef {
  field: string;
  ns: Namespace;
  role: 'use' | 'create' | 'destroy';
}

/** A NameRef maker for one role: `use('ioas')` (the field named as its namespace) or `use('src', 'ioas')`. */
function nameRef(role: NameRef['role']): { (field: Namespace): NameRef; (field: string, ns: Namespace): NameRef } {
  return (field: string, ns?: Namespace): NameRef => ({ field, ns: ns ?? (field as Namespace), role });
}
const use = nameRef('use');
const create = nameRef('create');
const destroy = nameRef('destroy');

/** The objects each op names, other than its caller. Uses are listed before creations and checked first. */
const NAME_REFS: Readonly<Partial<Record<TraceOpName, readonly NameRef[]>>> = {
  process: [create('pid', 'process')],
  open: [create('ctx')],
  ioas_alloc: [use('ctx'), create('ioas')],
  ioas_map: [use('ioas')],
  memfd: [create('file')],
  map_file: [use('ioas'), use('file')],
  ioas_unmap: [use('ioas')],
  ioas_copy: [use('src', 'ioas'), use('dst', 'ioas')],
  ioas_allow_iovas: [use('ioas')],
  ioas_huge_pages: [use('ioas')],
  domain_attach: [use('ioas'), create('domain')],
  domain_detach: [destroy('domain')],
  access_create: [use('ioas'), create('access')],
  access_destroy: [destroy('access')],
  access_pin: [use('access')],
  access_unpin: [use('access')],
  access_rw: [use('access')],
  access_replace: [use('access'), use('ioas')],
  vfio_unmap: [use('ioas')],
  change_process: [use('ctx')],
  // A HW queue and its internal access are one object named in the access namespace.
  hw_queue_alloc: [use('ioas'), create('queue', 'access')],
  hw_queue_destroy: [destroy('queue', 'access')],
  fork: [create('child', 'process')],
  send_fd: [use('to', 'process')],
  add_reserved: [use('ioas')],
  check_map: [use('ioas')],
};

/**
 * Ops whose `pid` is a caller that may be omitted. 'caller': any process or "kthread". 'mm': the op works
 * on that process's address space (its memory, or a user pointer into it), or on its file table, which a
 * kernel thread lacks. 'explicit': omitted means the implicit caller of version 1 (the process that opened
 * the object's context, src/replay/dispatch.ts), so it is not filled in; given, it must exist.
 */
const CALLER: Readonly<Record<TraceOpName, 'caller' | 'mm' | 'explicit'>> = {
  process: 'explicit',
  fault: 'explicit',
  temp_memory_limit: 'explicit',
  ioas_alloc: 'explicit',
  ioas_unmap: 'explicit',
  ioas_copy: 'explicit',
  ioas_allow_iovas: 'explicit',
  ioas_huge_pages: 'explicit',
  add_reserved: 'explicit',
  domain_attach: 'explicit',
  domain_detach: 'explicit',
  access_create: 'explicit',
  access_destroy: 'explicit',
  access_unpin: 'explicit',
  access_replace: 'explicit',
  vfio_unmap: 'explicit',
  hw_queue_alloc: 'explicit',
  hw_queue_destroy: 'explicit',
  fork: 'mm',
  close: 'mm',
  dup: 'mm',
  send_fd: 'mm',
  mmap: 'mm',
  munmap: 'mm',
  write: 'mm',
  read: 'mm',
  exit: 'mm',
  rlimit: 'mm',
  open: 'caller',
  ioas_map: 'mm',
  memfd: 'mm',
  map_file: 'mm',
  access_pin: 'caller',
  access_rw: 'caller',
  change_process: 'mm',
  check_map: 'mm',
  check_refs: 'mm',
};

function isTraceOpName(value: unknown): value is TraceOpName {
  return typeof value === 'string' && (TRACE_OPS as readonly string[]).includes(value);
}

function isObservationKind(value: unknown): value is ObservationKind {
  return typeof value === 'string' && (OBSERVATION_KINDS as readonly string[]).includes(value);
}

/** A raw name as the schema would normalise it, or null; for bookkeeping on lines that failed the schema. */
function rawName(value: unknown): string | null {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return null;
}

/** Whether a raw `expect` asks for an errno (not "ok"), read without the schema. */
function rawExpectsErrno(expect: unknown): boolean {
  if (typeof expect === 'string') return expect !== 'ok';
  if (typeof expect === 'object' && expect !== null && !Array.isArray(expect)) {
    const errno = (expect as Record<string, unknown>)['errno'];
    return typeof errno === 'string' && errno !== 'ok';
  }
  return false;
}

function plural(n: bigint, word: string): string {
  return `${n} ${word}${n === 1n ? '' : 's'}`;
}

/** The objects alive at the current line, and where each was created or removed (for messages). */
class Names {
  private readonly live: Record<Namespace, Map<string, number>> = {
    process: new Map(),
    ctx: new Map(),
    ioas: new Map(),
    domain: new Map(),
    access: new Map(),
    file: new Map(),
  };
  private readonly removed: Record<Namespace, Map<string, number>> = {
    process: new Map(),
    ctx: new Map(),
    ioas: new Map(),
    domain: new Map(),
    access: new Map(),
    file: new Map(),
  };
  /** Every domain ever attached: observations during a detach still name the domain being removed. */
  readonly everDomains = new Set<string>();
  /** Processes that exited, and the line of their `exit` (version 2 refuses their later ops). */
  readonly exited = new Map<string, number>();
  firstProcess: string | null = null;
  firstContext: string | null = null;

  has(ns: Namespace, name: string): boolean {
    return this.live[ns].has(name);
  }

  /** Why `name` cannot be used here. */
  missing(ns: Namespace, name: string): string {
    const removedAt = this.removed[ns].get(name);
    return removedAt === undefined
      ? `unknown ${LABEL[ns]} "${name}": no earlier ${CREATOR[ns]} creates it`
      : `${LABEL[ns]} "${name}" was ${REMOVED[ns]} on line ${removedAt}`;
  }

  exists(ns: Namespace, name: string): string {
    return `${LABEL[ns]} "${name}" already exists (created on line ${this.live[ns].get(name)})`;
  }

  create(ns: Namespace, name: string, line: number): void {
    if (this.live[ns].has(name)) return;
    this.live[ns].set(name, line);
    this.removed[ns].delete(name);
    if (ns === 'process') this.firstProcess ??= name;
    if (ns === 'ctx') this.firstContext ??= name;
    if (ns === 'domain') this.everDomains.add(name);
  }

  destroy(ns: Namespace, name: string, line: number): void {
    if (this.live[ns].delete(name)) this.removed[ns].set(name, line);
  }
}

/**
 * The line-by-line state shared by parseTraceText and parseTraceFile, so both read a trace identically.
 * Feed lines in order with `line`, then call `finish`.
 */
class TraceReader {
  private header: TraceHeader = { ...DEFAULT_TRACE_HEADER };
  private readonly entries: TraceEntry[] = [];
  /** Ops read so far, and the line of the last (kept or not). */
  entryCount = 0;
  lastEntryLine = 0;

  /** `keep` false: entries are counted, not kept (the last one stays reachable as `latest`). */
  constructor(private readonly keep = true) {}

  /** The entry read last; its observations are complete once another op is read or the text ends. */
  get latest(): TraceEntry | null {
    return this.current;
  }
  private readonly issues: TraceIssue[] = [];
  private readonly names = new Names();
  private seenContent = false;
  private seenOp = false;
  /** The last line that is not blank: where an empty trace is reported. */
  private lastLine = 0;
  /** The entry observations attach to; null after an op line that failed (its observations go nowhere). */
  private current: TraceEntry | null = null;

  get full(): boolean {
    return this.issues.length >= MAX_TRACE_ISSUES;
  }

  /** Read one line; false once the issue cap is reached and reading should stop. */
  line(text: string, line: number): boolean {
    if (this.full) return false;
    const body = line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    const start = body.trimStart();
    if (start !== '') this.lastLine = line;
    if (start === '' || start.startsWith('#')) return true;
    const first = !this.seenContent;
    this.seenContent = true;

    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (error) {
      this.report([{ line, field: null, message: `invalid JSON: ${(error as Error).message}` }]);
      return !this.full;
    }
    const repeated = duplicateKey(body, value);
    if (repeated !== null) {
      this.report([
        {
          line,
          field: repeated,
          message: 'duplicate key: a key may appear once per object (JSON would keep only the last value)',
        },
      ]);
      return !this.full;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.report([{ line, field: null, message: `expected a JSON object, got ${describeValue(value)}` }]);
    } else {
      const record = value as Record<string, unknown>;
      if (Object.hasOwn(record, 'op')) this.readOp(record, line);
      else if (Object.hasOwn(record, 'observed')) this.readObservation(record, line);
      else if (Object.hasOwn(record, 'format')) this.readHeader(record, line, first);
      else {
        this.report([
          {
            line,
            field: 'op',
            message: 'required field is missing (a line is an op, an "observed" line or the header)',
          },
        ]);
      }
    }
    return !this.full;
  }

  /** The parsed trace, or a TraceError with every issue found. */
  finish(fileName: string, sha256: string, allowEmpty = false): ParsedTrace {
    if (!allowEmpty && this.issues.length === 0 && this.entryCount === 0) {
      this.issues.push({ line: Math.max(1, this.lastLine), field: null, message: NO_OPERATIONS });
    }
    if (this.issues.length > 0) throw new TraceError(fileName, this.issues, this.full);
    return { header: this.header, entries: this.entries, sha256 };
  }

  private report(issues: readonly TraceIssue[]): void {
    for (const issue of issues) {
      if (this.full) return;
      this.issues.push(issue);
    }
  }

  private readHeader(record: Record<string, unknown>, line: number, first: boolean): void {
    if (!first) {
      this.report([{ line, field: 'format', message: 'the header must be the first non-comment line' }]);
      return;
    }
    const result = parseLine(traceHeaderSchema, record);
    if (result.success) {
      this.header = settleTraceHeader(result.data);
    } else {
      const known = { subject: 'the header', fields: Object.keys(traceHeaderSchema.shape) };
      this.report(traceIssuesFromZod(line, result.error.issues, known));
    }
  }

  private readOp(record: Record<string, unknown>, line: number): void {
    this.seenOp = true;
    this.current = null;
    const result = parseLine(traceOpSchema, record);
    if (!result.success) {
      const name = record['op'];
      const known: KnownFields | undefined = isTraceOpName(name)
        ? { subject: name, fields: TRACE_OP_FIELDS[name] }
        : undefined;
      this.report(traceIssuesFromZod(line, result.error.issues, known));
      if (isTraceOpName(name)) this.applyRaw(name, record, line);
      return;
    }
    const issues: TraceIssue[] = [];
    const op = this.resolve(result.data, line, issues);
    if (issues.length > 0) {
      this.report(issues);
      return;
    }
    const entry: TraceEntry = { line, op, observed: [] };
    if (this.keep) this.entries.push(entry);
    this.entryCount += 1;
    this.lastEntryLine = line;
    this.current = entry;
  }

  private readObservation(record: Record<string, unknown>, line: number): void {
    if (!this.seenOp) {
      this.report([
        { line, field: 'observed', message: 'observation before any op: it must follow the op it records' },
      ]);
      return;
    }
    const result = parseLine(observationSchema, record);
    if (!result.success) {
      const kind = record['observed'];
      const known: KnownFields | undefined = isObservationKind(kind)
        ? { subject: kind, fields: OBSERVATION_FIELDS[kind] }
        : undefined;
      this.report(traceIssuesFromZod(line, result.error.issues, known));
      return;
    }
    const observation = result.data;
    if (
      (observation.observed === 'iommu_map' || observation.observed === 'iommu_unmap') &&
      !this.names.everDomains.has(observation.domain)
    ) {
      this.report([{ line, field: 'domain', message: this.names.missing('domain', observation.domain) }]);
      return;
    }
    this.current?.observed.push(observation);
  }

  /**
   * Check the names `op` uses against the objects alive before it, fill in the caller and context, and
   * apply its creations and removals. An op expecting an errno is checked for nothing and changes nothing:
   * the kernel is to refuse it.
   */
  private resolve(op: UnresolvedTraceOp, line: number, issues: TraceIssue[]): TraceOp {
    const expectsErrno = op.expect !== undefined && op.expect.errno !== 'ok';
    const fields = op as unknown as Record<string, unknown>;
    const resolved: Record<string, unknown> = { ...fields };

    const version = this.header.version;
    if (version < 2 && V2_OPS.includes(op.op)) {
      issues.push({
        line,
        field: 'op',
        message: `"${op.op}" is a version 2 op (file lifetime): start the trace with {"format":"ioptrace-trace","version":2}`,
      });
    }
    for (const field of V2_FIELDS[op.op] ?? []) {
      if (version < 2 && fields[field] !== null && fields[field] !== undefined) {
        issues.push({ line, field, message: 'a descriptor number needs version 2 (file lifetime)' });
      }
    }
    if (version >= 2 && op.op === 'access_destroy') {
      issues.push({
        line,
        field: 'op',
        message: 'in version 2 an access lives as long as its file: "close" its descriptor instead',
      });
    }

    const role = op.op === 'process' ? undefined : CALLER[op.op];
    if (role === 'explicit') {
      const given = fields['pid'] as string | null | undefined;
      if (typeof given === 'string' && given !== KTHREAD && !this.names.has('process', given) && !expectsErrno) {
        issues.push({ line, field: 'pid', message: this.names.missing('process', given) });
      }
    } else if (role !== undefined) {
      const given = fields['pid'] as string | undefined;
      if (given === undefined) {
        if (this.names.firstProcess === null) {
          issues.push({
            line,
            field: 'pid',
            message: 'no process yet to default to: name a pid or start a process first',
          });
        } else {
          resolved['pid'] = this.names.firstProcess;
        }
      } else if (given === KTHREAD) {
        if (role === 'mm' && !expectsErrno) {
          issues.push({ line, field: 'pid', message: '"kthread" has no address space: name a process' });
        }
      } else if (!this.names.has('process', given) && !expectsErrno) {
        issues.push({ line, field: 'pid', message: this.names.missing('process', given) });
      }
    }

    if (version >= 2) this.refuseDeadProcesses(op, resolved, line, issues);

    if ((op.op === 'ioas_alloc' || op.op === 'change_process') && op.ctx === undefined) {
      if (this.names.firstContext === null) {
        issues.push({ line, field: 'ctx', message: 'no context yet to default to: name a ctx or open one first' });
      } else {
        resolved['ctx'] = this.names.firstContext;
      }
    }

    if (op.op === 'mmap' && op.pfns !== null) {
      const pageSize = BigInt(this.header.page_size);
      const pages = (op.length + pageSize - 1n) / pageSize;
      const covered = op.pfns.reduce((sum, [, n]) => sum + BigInt(n), 0n);
      if (covered !== pages) {
        issues.push({
          line,
          field: 'pfns',
          message:
            `pfns cover ${plural(covered, 'page')} but length ${op.length} is ` +
            `${plural(pages, 'page')} of ${pageSize} bytes`,
        });
      }
    }

    for (const ref of NAME_REFS[op.op] ?? []) {
      const name = resolved[ref.field];
      if (typeof name !== 'string' || expectsErrno) continue;
      const alive = this.names.has(ref.ns, name);
      if (ref.role === 'create' ? alive : !alive) {
        issues.push({
          line,
          field: ref.field,
          message: ref.role === 'create' ? this.names.exists(ref.ns, name) : this.names.missing(ref.ns, name),
        });
      }
    }
    if (!expectsErrno) this.apply(op.op, resolved, line);
    if (op.op === 'exit' && typeof resolved['pid'] === 'string') this.names.exited.set(resolved['pid'], line);
    return resolved as TraceOp;
  }

  /**
   * Version 2: a process that has exited issues no more ops, and nothing is handed to it. Its name stays
   * taken (no later `process` or `fork` reuses it). In version 1 an exited process may still be named (its
   * memory ops return ESRCH, its contexts stay usable), as before.
   */
  private refuseDeadProcesses(
    op: UnresolvedTraceOp,
    resolved: Record<string, unknown>,
    line: number,
    issues: TraceIssue[],
  ): void {
    for (const field of ['pid', 'to'] as const) {
      if (field === 'pid' && op.op === 'process') continue;
      const pid = resolved[field];
      if (typeof pid !== 'string') continue;
      const exitedAt = this.names.exited.get(pid);
      if (exitedAt === undefined) continue;
      issues.push({
        line,
        field,
        message:
          field === 'pid'
            ? `process "${pid}" exited on line ${exitedAt}: a process that has exited issues no more ops`
            : `process "${pid}" exited on line ${exitedAt}: no descriptor can be passed to it`,
      });
    }
    if ((op.op === 'open' || op.op === 'access_create') && resolved['pid'] === KTHREAD) {
      issues.push({ line, field: 'pid', message: '"kthread" has no file table to install the descriptor in' });
    }
  }

  /** Apply the creations and removals of an op (also of a failed line, so one typo does not cascade). */
  private apply(op: TraceOpName, fields: Record<string, unknown>, line: number): void {
    for (const ref of NAME_REFS[op] ?? []) {
      const name = rawName(fields[ref.field]);
      if (name === null) continue;
      if (ref.role === 'create') this.names.create(ref.ns, name, line);
      if (ref.role === 'destroy') this.names.destroy(ref.ns, name, line);
    }
  }

  private applyRaw(op: TraceOpName, record: Record<string, unknown>, line: number): void {
    if (!rawExpectsErrno(record['expect'])) this.apply(op, record, line);
  }
}

/** Parse a whole trace held in memory. `fileName` only names the trace in error messages. */
/** `allowEmpty`: a trace with no op is accepted (what a program that never opened /dev/iommu did). */
export function parseTraceText(text: string, fileName = 'trace', options: { allowEmpty?: boolean } = {}): ParsedTrace {
  const reader = new TraceReader();
  for (const _ of readTextLines(text, reader));
  return reader.finish(fileName, createHash('sha256').update(text, 'utf8').digest('hex'), options.allowEmpty);
}

/** Feed `text` to `reader` line by line; yields after each line (so a caller can take entries as they come). */
function* readTextLines(text: string, reader: TraceReader): Generator<void, void, undefined> {
  // A regex of its own: two readers of one text (a stream and its check) may be part way at once.
  const lineBreak = new RegExp(LINE_BREAK.source, 'g');
  let line = 0;
  let start = 0;
  for (;;) {
    const match = lineBreak.exec(text);
    const end = match === null ? text.length : match.index;
    line += 1;
    const more = reader.line(text.slice(start, end), line);
    yield;
    if (!more || match === null) return;
    start = end + match[0].length;
  }
}

/**
 * Check a whole trace held in memory as parseTraceText does (the same TraceError for a bad one), without
 * keeping its ops: they are parsed again, one at a time, as `entries` is iterated.
 *
 * @example const t = streamTraceText(text, 'guest.jsonl'); for (const e of t.entries) replayOne(e.op);
 */
export function streamTraceText(
  text: string,
  fileName = 'trace',
  options: { allowEmpty?: boolean } = {},
): StreamedTrace {
  const check = new TraceReader(false);
  for (const _ of readTextLines(text, check));
  const { header, sha256 } = check.finish(
    fileName,
    createHash('sha256').update(text, 'utf8').digest('hex'),
    options.allowEmpty,
  );
  return {
    header,
    sha256,
    opCount: check.entryCount,
    lastOpLine: check.lastEntryLine,
    entries: { [Symbol.iterator]: () => entriesOf(text) },
  };
}

/** The entries of a checked text, each yielded once the next op (or the end) shows its observations are all read. */
function* entriesOf(text: string): Generator<TraceEntry, void, undefined> {
  const reader = new TraceReader(false);
  let held: TraceEntry | null = null;
  for (const _ of readTextLines(text, reader)) {
    const latest = reader.latest;
    if (latest === held || latest === null) continue;
    if (held !== null) yield held;
    held = latest;
  }
  if (held !== null) yield held;
}

/**
 * Parse a whole trace held as bytes, refusing bytes that are not UTF-8 (a TraceError naming the line).
 * The CLI reads traces this way.
 */
export function parseTraceBytes(bytes: Uint8Array, fileName = 'trace'): ParsedTrace {
  return parseTraceText(decodeUtf8Trace(bytes, fileName), fileName);
}

/**
 * Parse a trace file line by line, holding one line at a time (plus the parsed result).
 * Rejects with a TraceError for a bad trace, or with the fs error if the file cannot be read.
 */
export async function parseTraceFile(path: string): Promise<ParsedTrace> {
  const reader = new TraceReader();
  const hash = createHash('sha256');
  const stream = createReadStream(path);
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  let stopped = false;
  const stop = (): void => {
    stopped = true;
    lines.close();
    stream.destroy();
  };
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let linesBefore = 1;
  let badUtf8: TraceError | null = null;
  let endedWithCR = false;
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk) => {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      if (badUtf8 !== null) return;
      try {
        utf8.decode(bytes, { stream: true });
      } catch {
        // A chunk may start inside a character begun in the one before: skip its continuation bytes.
        let from = 0;
        while (from < 3 && ((bytes[from] ?? 0) & 0xc0) === 0x80) from += 1;
        const at = Math.max(from, firstInvalidUtf8(bytes, from));
        badUtf8 = new TraceError(path, [
          { line: lineOfOffset(bytes, at, linesBefore), field: null, message: notUtf8Message(bytes[at] ?? 0) },
        ]);
        reject(badUtf8);
        stop();
        return;
      }
      // A \r\n split across two chunks is one line break, counted at the \r.
      if (endedWithCR && bytes[0] === 0x0a) linesBefore -= 1;
      linesBefore = lineOfOffset(bytes, bytes.length, linesBefore);
      endedWithCR = bytes[bytes.length - 1] === 0x0d;
    });
    stream.once('error', reject);
    lines.once('error', reject);
    lines.once('close', resolve);
    lines.on('line', (text: string) => {
      // readline may still deliver the rest of a chunk after close()
      if (stopped) return;
      try {
        line += 1;
        if (!reader.line(text, line)) stop();
      } catch (error) {
        stop();
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
  try {
    utf8.decode();
  } catch {
    throw new TraceError(path, [
      { line: linesBefore, field: null, message: `${NOT_UTF8} (it ends inside a character)` },
    ]);
  }
  return reader.finish(path, hash.digest('hex'));
}
