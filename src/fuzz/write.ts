// SPDX-License-Identifier: GPL-2.0-only
/**
 * TraceOp objects back to the trace format (docs/trace-format.md, version 1): the inverse of
 * src/replay/parse.ts for everything a parsed op holds, so parseTraceText(serializeTrace(...)) gives the
 * same ops (callers resolved, defaults applied). Observations are not written: the fuzzer has none, and a
 * shrunk trace is a different run than the one a real kernel was observed doing.
 *
 * Encoding: addresses and IOVAs (addr, uptr, iova, src_iova, dst_iova, ranges, aperture) as 0x hex strings;
 * lengths and byte counts as JSON numbers up to 2^53 - 1, above that as 0x hex strings; fields equal to the
 * contract's default are left out, except the caller `pid` and the `ctx` of `ioas_alloc`, which are always
 * written so a line reads the same wherever it ends up after shrinking.
 *
 * The comment header of a saved trace carries one machine-readable line, `# ioptrace-fuzz: {json}`, naming
 * the variant, the finding it reproduces and, for a generated trace, the seed; `ioptrace shrink` reads it.
 */
import type { Expectation, TraceHeader, TraceOp, TraceOpName } from '../events/trace.js';
import { defaultTraceHeader, KTHREAD, TRACE_OP_FIELDS } from '../events/trace.js';

/** Fields holding an address or an IOVA (written in hex). */
const ADDRESS_FIELDS: ReadonlySet<string> = new Set(['addr', 'uptr', 'iova', 'src_iova', 'dst_iova']);
/** Fields holding [start, last] address pairs. */
const RANGE_FIELDS: ReadonlySet<string> = new Set(['ranges', 'aperture']);

/** The contract's defaults of optional fields, per op (docs/trace-format.md). */
const DEFAULTS: Readonly<Partial<Record<TraceOpName, Readonly<Record<string, unknown>>>>> = {
  process: { uid: 1000, memlock: 65536n, cap_ipc_lock: false },
  mmap: { huge: '4K', prot: 'rw', shared: false },
  open: { account: 'user', vfio_type1: false },
  ioas_map: { read: true, write: true },
  ioas_copy: { read: true, write: true },
  domain_attach: { kind: 'mock' },
  access_create: { needs_pin_pages: true },
  access_pin: { write: true },
  access_rw: { write: false },
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** 0x hex, as addresses are written. */
export function hexOf(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/** A count or length: a JSON number when exact, else a hex string. */
function quantity(value: bigint): number | string {
  return value <= MAX_SAFE ? Number(value) : hexOf(value);
}

function encodeExpect(expect: Expectation): unknown {
  const { errno, iova, unmapped, data } = expect;
  if (iova === undefined && unmapped === undefined && data === undefined) return errno;
  const out: Record<string, unknown> = {};
  if (errno !== 'ok') out['errno'] = errno;
  if (iova !== undefined) out['iova'] = hexOf(iova);
  if (unmapped !== undefined) out['unmapped'] = quantity(unmapped);
  if (data !== undefined) out['data'] = data;
  return out;
}

function encodeValue(field: string, value: unknown): unknown {
  if (ADDRESS_FIELDS.has(field) && typeof value === 'bigint') return hexOf(value);
  if (RANGE_FIELDS.has(field)) {
    const pairs = field === 'aperture' ? [value as [bigint, bigint]] : (value as [bigint, bigint][]);
    const encoded = pairs.map(([start, last]) => [hexOf(start), hexOf(last)]);
    return field === 'aperture' ? encoded[0] : encoded;
  }
  if (typeof value === 'bigint') return quantity(value);
  // A PFN is hex in every output; the run length is a count.
  if (field === 'pfns' && Array.isArray(value))
    return value.map(([pfn, n]: readonly [number, number]) => [hexOf(pfn), n]);
  return value;
}

/** One op as the JSON object of its line, keys in the contract's order. */
export function opRecord(op: TraceOp): Record<string, unknown> {
  const fields = op as unknown as Record<string, unknown>;
  const defaults = DEFAULTS[op.op] ?? {};
  const out: Record<string, unknown> = { op: op.op };
  for (const field of TRACE_OP_FIELDS[op.op]) {
    const value = fields[field];
    if (value === undefined || value === null) continue;
    if (field === 'expect') {
      out['expect'] = encodeExpect(value as Expectation);
      continue;
    }
    if (op.op === 'ioas_unmap') {
      // Unmap-all is written as the contract spells it; the parser turns it back into iova 0, length 2^64 - 1.
      if (field === 'all') {
        if (op.all) out['all'] = true;
        continue;
      }
      if ((field === 'iova' || field === 'length') && op.all) continue;
    }
    if (op.op === 'access_rw' && field === 'kthread' && value === (op.pid === KTHREAD)) continue;
    if (field in defaults && defaults[field] === value) continue;
    out[field] = encodeValue(field, value);
  }
  return out;
}

/** One op as its trace line (no newline). */
export function serializeOp(op: TraceOp): string {
  return JSON.stringify(opRecord(op));
}

/** The header line, with the settings that differ from the defaults. */
export function serializeHeader(header: TraceHeader): string {
  const out: Record<string, unknown> = { format: 'ioptrace-trace', version: header.version };
  const defaults = defaultTraceHeader(header.version);
  if (header.page_size !== defaults.page_size) out['page_size'] = header.page_size;
  if (header.test_build !== defaults.test_build) out['test_build'] = header.test_build;
  if (header.temp_memory_limit !== defaults.temp_memory_limit) {
    out['temp_memory_limit'] = quantity(header.temp_memory_limit);
  }
  if (header.gup_zero_on_overflow !== defaults.gup_zero_on_overflow) {
    out['gup_zero_on_overflow'] = header.gup_zero_on_overflow;
  }
  if (header.gup_unshare_read_pins !== defaults.gup_unshare_read_pins) {
    out['gup_unshare_read_pins'] = header.gup_unshare_read_pins;
  }
  return JSON.stringify(out);
}

/** What a saved trace reproduces, as its `# ioptrace-fuzz:` line records it. */
export interface TraceTag {
  variant: string;
  /** The fix flags when they are not exactly the named variant's. */
  fixes?: string[];
  kind: string;
  fn: string;
  /** The generator seed and op budget of a fuzzed trace (regenerates it byte for byte). */
  seed?: number;
  ops?: number;
}

export const TAG_PREFIX = '# ioptrace-fuzz: ';

/** A whole trace: comment lines (each written as `# ...`), the tag line, the header, one line per op. */
export function serializeTrace(trace: {
  header: TraceHeader;
  ops: readonly TraceOp[];
  comments?: readonly string[];
  tag?: TraceTag;
}): string {
  const lines: string[] = [];
  for (const comment of trace.comments ?? []) lines.push(comment === '' ? '#' : `# ${comment}`);
  if (trace.tag !== undefined) lines.push(`${TAG_PREFIX}${JSON.stringify(trace.tag)}`);
  lines.push(serializeHeader(trace.header));
  for (const op of trace.ops) lines.push(serializeOp(op));
  return `${lines.join('\n')}\n`;
}

/** The tag of a saved trace, or null when it has none (or a malformed one). */
export function readTag(text: string): TraceTag | null {
  for (const line of text.split(/\r\n|\n|\r/)) {
    const start = line.trimStart();
    if (start.startsWith(TAG_PREFIX.trimEnd())) {
      try {
        const value = JSON.parse(start.slice(TAG_PREFIX.trimEnd().length)) as unknown;
        if (typeof value !== 'object' || value === null) return null;
        const tag = value as Record<string, unknown>;
        if (typeof tag['variant'] !== 'string' || typeof tag['kind'] !== 'string' || typeof tag['fn'] !== 'string') {
          return null;
        }
        return value as TraceTag;
      } catch {
        return null;
      }
    }
    // The tag sits in the leading comment block; stop at the first line that is not a comment.
    if (start !== '' && !start.startsWith('#')) return null;
  }
  return null;
}

/** A file-name-safe rendering of a finding key: `<kind>-<fn>`. */
export function findingFileStem(kind: string, fn: string): string {
  const safe = (s: string): string => s.replace(/[^A-Za-z0-9_.]+/g, '_');
  return `${safe(kind)}-${safe(fn)}`;
}
