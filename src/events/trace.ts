// SPDX-License-Identifier: GPL-2.0-only
/**
 * Trace lines, versions 1 to 5: the zod schemas of the public contract in docs/trace-format.md (header, every
 * op, `expect`, `observed` lines) and the types inferred from them. Version 2 adds file lifetime (the ops of
 * V2_OPS and the `fd` fields); which op a version allows is checked by src/replay/parse.ts.
 *
 * Parsing applies every default the contract states, so a parsed op is complete: optional inputs whose absence
 * means something ("allocate an IOVA", "default PFN layout") become `null`, never a missing key. The two
 * defaults that depend on earlier lines (the caller `pid`, the `ctx` of `ioas_alloc`) are resolved by
 * src/replay/parse.ts; `TraceOp` is the op after that resolution.
 *
 * Field names stay snake_case as in the contract, so an error names the field the user wrote.
 * Addresses, IOVAs, lengths and byte counts are bigint (they reach 2^64 - 1); small counts are number.
 */

import { z } from 'zod';

/** 2^64 - 1, the largest IOVA, user address or length. */
export const U64_MAX = (1n << 64n) - 1n;

/** The caller name of a kernel thread: no mm, so every user-memory access from it is remote. */
export const KTHREAD = 'kthread';

/** Message of every "required field is missing" issue, shared with src/replay/errors.ts. */
export const MISSING_FIELD = 'required field is missing';

/** Linux errno names a trace may expect (ENOTSUPP is the kernel-internal 524, distinct from EOPNOTSUPP). */
export const ERRNO_NAMES = [
  'EPERM',
  'ENOENT',
  'ESRCH',
  'EINTR',
  'EIO',
  'ENXIO',
  'E2BIG',
  'ENOEXEC',
  'EBADF',
  'ECHILD',
  'EAGAIN',
  'ENOMEM',
  'EACCES',
  'EFAULT',
  'EBUSY',
  'EEXIST',
  'EXDEV',
  'ENODEV',
  'ENOTDIR',
  'EISDIR',
  'EINVAL',
  'ENFILE',
  'EMFILE',
  'ENOTTY',
  'EFBIG',
  'ENOSPC',
  'ESPIPE',
  'EROFS',
  'EMLINK',
  'EPIPE',
  'EDOM',
  'ERANGE',
  'EDEADLK',
  'ENAMETOOLONG',
  'ENOLCK',
  'ENOSYS',
  'ENOTEMPTY',
  'ELOOP',
  'ENODATA',
  'EOVERFLOW',
  'EOPNOTSUPP',
  'EADDRINUSE',
  'EADDRNOTAVAIL',
  'ENOTSUPP',
] as const;
export type ErrnoName = (typeof ERRNO_NAMES)[number];

/** Other spellings of the same errno; parsing keeps only the canonical name so results compare with `===`. */
export const ERRNO_ALIASES: Readonly<Record<string, ErrnoName>> = { EDEADLOCK: 'EDEADLK' };

/** The named fault points of the `fault` op (kernel-model.md section 16). */
export const FAULT_SITES = [
  'kmalloc',
  'temp_kmalloc',
  'gup',
  'charge',
  'pages_to_xarray',
  'iommu_map',
  'rw_page',
  'iommu_pages',
] as const;
export type FaultSite = (typeof FAULT_SITES)[number];

/** Every op of the contract, in the order of its tables (machine, iommufd, checks). */
export const TRACE_OPS = [
  'process',
  'mmap',
  'munmap',
  'write',
  'read',
  'exit',
  'rlimit',
  'fault',
  'temp_memory_limit',
  'memfd',
  'open',
  'ioas_alloc',
  'ioas_map',
  'map_file',
  'ioas_unmap',
  'ioas_copy',
  'ioas_allow_iovas',
  'ioas_huge_pages',
  'add_reserved',
  'domain_attach',
  'domain_detach',
  'access_create',
  'access_destroy',
  'access_pin',
  'access_unpin',
  'access_rw',
  'access_replace',
  'vfio_unmap',
  'change_process',
  'check_map',
  'check_refs',
  'fork',
  'close',
  'dup',
  'send_fd',
  'hw_queue_alloc',
  'hw_queue_destroy',
] as const;
export type TraceOpName = (typeof TRACE_OPS)[number];

/** The trace versions this ioptrace reads. */
export const TRACE_VERSIONS = [1, 2, 3, 4, 5] as const;
export type TraceVersion = (typeof TRACE_VERSIONS)[number];

/** Ops that exist only in version 2: they act on descriptors and file lifetime. */
export const V2_OPS: readonly TraceOpName[] = ['fork', 'close', 'dup', 'send_fd'];

/** Fields that only version 2 accepts, by op (a descriptor number chosen by the trace). */
export const V2_FIELDS: Readonly<Partial<Record<TraceOpName, readonly string[]>>> = {
  open: ['fd'],
  access_create: ['fd'],
};

export const OBSERVATION_KINDS = ['iommu_map', 'iommu_unmap', 'pin', 'unpin', 'warn', 'result'] as const;
export type ObservationKind = (typeof OBSERVATION_KINDS)[number];

// ---------------------------------------------------------------------------------------------------------
// Values

/** A short rendering of a JSON value for messages ("got ..."). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') {
    const text = JSON.stringify(value);
    return text.length > 42 ? `${text.slice(0, 40)}..."` : text;
  }
  return String(value);
}

interface IntegerLimit {
  readonly min: bigint;
  readonly max: bigint;
  readonly maxText: string;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const DECIMAL = /^[0-9]+$/;
const HEX = /^0[xX][0-9a-fA-F]+$/;

/** The integer a trace value denotes, or the message saying why it denotes none. */
function readInteger(value: unknown, limit: IntegerLimit): bigint | string {
  let n: bigint;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return `expected an integer, got ${value}`;
    if (value < 0) return `negative number ${value}: expected a non-negative integer`;
    if (!Number.isSafeInteger(value)) {
      // JSON.parse has already rounded it, so the value the user wrote is lost.
      return limit.max > MAX_SAFE
        ? 'JSON number above 2^53 - 1 loses precision: write it as a string (decimal or 0x hex)'
        : `number above ${limit.maxText}`;
    }
    n = BigInt(value);
  } else if (typeof value === 'string') {
    if (!DECIMAL.test(value) && !HEX.test(value)) {
      return `expected an integer (decimal or 0x hex), got ${describeValue(value)}`;
    }
    n = BigInt(value);
    if (n > U64_MAX) return `2^64 overflow: ${describeValue(value)} is above 2^64 - 1`;
  } else if (value === undefined) {
    return MISSING_FIELD;
  } else {
    return `expected an integer (a number, or a decimal or 0x hex string), got ${describeValue(value)}`;
  }
  if (n > limit.max) return `${n} is above ${limit.maxText}`;
  if (n < limit.min) return `expected at least ${limit.min}, got ${n}`;
  return n;
}

/** Report `message` from inside a transform; the returned NEVER stops the pipe. */
function fail(ctx: { addIssue(issue: { code: 'custom'; message: string }): void }, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

/** An address, IOVA, length or byte count: 0 .. 2^64 - 1 as bigint. */
const u64 = z.unknown().transform((value, ctx): bigint => {
  const n = readInteger(value, { min: 0n, max: U64_MAX, maxText: '2^64 - 1' });
  return typeof n === 'string' ? fail(ctx, n) : n;
});

/** A small count as number: at most 2^53 - 1 (or `max`), at least `min`. */
function count(min = 0, max = Number.MAX_SAFE_INTEGER, maxText = '2^53 - 1') {
  return z.unknown().transform((value, ctx): number => {
    const n = readInteger(value, { min: BigInt(min), max: BigInt(max), maxText });
    return typeof n === 'string' ? fail(ctx, n) : Number(n);
  });
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** Page sizes stay number: they are small powers of two that the model divides by, not addresses. */
const pageSize = count(4096, 2 ** 30, '2^30 (1 GiB)').refine(isPowerOfTwo, { message: 'expected a power of two' });

/** A name chosen by the trace; integers are normalised so that 1 and "1" name the same object. */
const name = z.unknown().transform((value, ctx): string => {
  // The model's tables are plain objects keyed by name: a name that is also a property every object has
  // ("constructor", "__proto__", ...) would find that property instead of the trace's object.
  if (typeof value === 'string' && value in Object.prototype) {
    return fail(ctx, `"${value}" cannot name an object: it is a built-in property name of the model's tables`);
  }
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  return fail(
    ctx,
    value === undefined
      ? MISSING_FIELD
      : `expected a name (a non-empty string or an integer), got ${describeValue(value)}`,
  );
});

/** `null` when the key is absent: the op then means something specific ("allocate", "default layout"). */
function orNull<T extends z.ZodType>(schema: T) {
  return schema
    .optional()
    .transform((value) => (value === undefined ? null : value) as Exclude<z.output<T>, undefined> | null);
}

/** A process name: "kthread" is taken by kernel threads. */
const processName = name.refine((pid) => pid !== KTHREAD, { message: '"kthread" is reserved for kernel threads' });

/** The caller; omitted means the first process, filled in by src/replay/parse.ts. */
const caller = name.optional();

/**
 * The caller of an op that had none before `pid` was accepted on every op: omitted keeps the implicit
 * caller of version 1 (the process that opened the object's context), so old traces replay alike.
 */
const optionalCaller = name.optional();

/** A descriptor number: what open, dup, fcntl(F_DUPFD) and SCM_RIGHTS hand a process. */
const fdNumber = count(0, 0x7fffffff, '2^31 - 1');

/** Bytes as hex, normalised to lower case. */
const hexBytes = z.string().transform((text, ctx): string => {
  if (!/^[0-9a-fA-F]*$/.test(text)) return fail(ctx, `expected hex digits, got ${describeValue(text)}`);
  if (text.length % 2 !== 0) return fail(ctx, `odd number of hex digits (${text.length}): expected whole bytes`);
  return text.toLowerCase();
});

function pair<A extends z.ZodType, B extends z.ZodType>(first: A, second: B, what: string) {
  return z.tuple([first, second], {
    error: (iss) => (iss.code === 'too_small' || iss.code === 'too_big' ? `expected a pair ${what}` : undefined),
  });
}

/** A run of physical pages [first_pfn, count], as pfn_batch keeps them. */
const pfnRun = pair(count(), count(1), '[first_pfn, count]').transform(([pfn, n], ctx): [number, number] => {
  if (pfn + n - 1 > Number.MAX_SAFE_INTEGER) return fail(ctx, 'run ends above PFN 2^53 - 1');
  return [pfn, n];
});
const pfnRuns = z.array(pfnRun).min(1, { message: 'expected at least one [first_pfn, count] run' });

/** An inclusive range [start, last]; the kernel, not the trace, rejects start > last in allow_iovas. */
const range = pair(u64, u64, '[start, last]');

/** RLIMIT_MEMLOCK in bytes, or "unlimited" (RLIM_INFINITY). */
const memlock = z.unknown().transform((value, ctx): bigint | 'unlimited' => {
  if (value === 'unlimited') return value;
  const numeric = typeof value === 'number' || (typeof value === 'string' && (DECIMAL.test(value) || HEX.test(value)));
  if (!numeric && value !== undefined) {
    return fail(ctx, `expected bytes (an integer) or "unlimited", got ${describeValue(value)}`);
  }
  const n = readInteger(value, { min: 0n, max: U64_MAX, maxText: '2^64 - 1' });
  return typeof n === 'string' ? fail(ctx, n) : n;
});

/** "ok" or an errno name, aliases folded into the canonical name. */
const errnoOrOk = z.string().transform((text, ctx): ErrnoName | 'ok' => {
  if (text === 'ok') return text;
  const alias = ERRNO_ALIASES[text];
  if (alias !== undefined) return alias;
  if ((ERRNO_NAMES as readonly string[]).includes(text)) return text as ErrnoName;
  return fail(
    ctx,
    `unknown errno ${describeValue(text)}: expected "ok" or a Linux errno name (EFAULT, ENOMEM, EINVAL, ...)`,
  );
});

// ---------------------------------------------------------------------------------------------------------
// expect

const expectationObject = z.strictObject({
  errno: errnoOrOk.default('ok'),
  iova: u64.optional(),
  unmapped: u64.optional(),
  data: hexBytes.optional(),
});

/** What an op is expected to return; fields left out are not compared. */
export type Expectation = z.output<typeof expectationObject>;

/** `"ok"`, `"EFAULT"` or `{"errno": ..., "iova": ..., "unmapped": ..., "data": ...}`, all as the object form. */
export const expectationSchema = z.union(
  [errnoOrOk.transform((errno): Expectation => ({ errno })), expectationObject],
  {
    error: (iss) =>
      iss.code === 'invalid_union'
        ? `expected "ok", an errno name or an object {errno, iova, unmapped, data}, got ${describeValue(iss.input)}`
        : undefined,
  },
);

const common = { expect: expectationSchema.optional() };

// ---------------------------------------------------------------------------------------------------------
// Header

const traceHeaderShape = {
  format: z.literal('ioptrace-trace'),
  // Version 2 adds file lifetime: descriptors, fork, close, fd passing, exit releasing files. Version 3 keeps
  // all of version 2 and changes two things a replay shows: finding texts give PFNs in hex, and
  // gup_unshare_read_pins defaults to true (the GUP of every kernel since 5.19). Version 4 keeps all of
  // version 3 and changes the events of a replay only: allocations and mappings come in bounded PFN run lists.
  // Version 5 keeps all of version 4 and changes the events only: xarray stores and erases come in run lists.
  version: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4), z.literal(5)], {
    error: (iss) =>
      iss.input === undefined
        ? MISSING_FIELD
        : `unsupported version ${describeValue(iss.input)}: this ioptrace reads versions ${TRACE_VERSIONS.join(', ')}`,
  }),
  page_size: pageSize.default(4096),
  test_build: z.boolean().default(true),
  temp_memory_limit: u64.default(65536n),
  gup_zero_on_overflow: z.boolean().default(true),
  // Its default depends on the version: see settleTraceHeader.
  gup_unshare_read_pins: z.boolean().optional(),
};

/**
 * The header, the first non-comment line if present: `{"format":"ioptrace-trace","version":1, ...settings}`.
 * What it parses to still needs settleTraceHeader, which fills the defaults that depend on the version.
 */
export const traceHeaderSchema = z.strictObject(traceHeaderShape);
type ParsedTraceHeader = z.output<typeof traceHeaderSchema>;
export type TraceHeader = Omit<ParsedTraceHeader, 'gup_unshare_read_pins'> & { gup_unshare_read_pins: boolean };

/** A parsed header with the version's defaults filled in. */
export function settleTraceHeader(parsed: ParsedTraceHeader): TraceHeader {
  return { ...parsed, gup_unshare_read_pins: parsed.gup_unshare_read_pins ?? parsed.version >= 3 };
}

/** The settings of a header that names only its version. */
export function defaultTraceHeader(version: TraceVersion): Readonly<TraceHeader> {
  return Object.freeze(settleTraceHeader(traceHeaderSchema.parse({ format: 'ioptrace-trace', version })));
}

/** The settings of a trace without a header line. */
export const DEFAULT_TRACE_HEADER: Readonly<TraceHeader> = defaultTraceHeader(1);

// ---------------------------------------------------------------------------------------------------------
// Ops

const prot = z.enum(['rw', 'r']);

const opShapes = {
  // Machine
  process: {
    op: z.literal('process'),
    pid: processName,
    uid: count(0, 0xffffffff, '2^32 - 1').default(1000),
    memlock: memlock.default(65536n),
    cap_ipc_lock: z.boolean().default(false),
  },
  mmap: {
    op: z.literal('mmap'),
    pid: caller,
    addr: u64,
    length: u64,
    huge: z.enum(['4K', '2M', '1G']).default('4K'),
    prot: prot.default('rw'),
    pfns: orNull(pfnRuns),
    // MAP_SHARED instead of MAP_PRIVATE: no copy-on-write, the same frames in a forked child.
    shared: z.boolean().default(false),
  },
  munmap: { op: z.literal('munmap'), pid: caller, addr: u64, length: u64 },
  write: { op: z.literal('write'), pid: caller, addr: u64, data: hexBytes },
  read: { op: z.literal('read'), pid: caller, addr: u64, length: u64 },
  exit: { op: z.literal('exit'), pid: caller },
  rlimit: { op: z.literal('rlimit'), pid: caller, memlock },
  fault: { op: z.literal('fault'), pid: optionalCaller, nth: count(1), site: orNull(z.enum(FAULT_SITES)) },
  temp_memory_limit: { op: z.literal('temp_memory_limit'), pid: optionalCaller, bytes: u64 },
  memfd: {
    op: z.literal('memfd'),
    file: name,
    pid: caller,
    length: u64,
    huge: z.enum(['4K', '2M']).default('4K'),
  },
  // iommufd
  open: {
    op: z.literal('open'),
    ctx: name,
    pid: caller,
    account: z.enum(['user', 'mm']).default('user'),
    vfio_type1: z.boolean().default(false),
    fd: fdNumber.optional(),
  },
  ioas_alloc: { op: z.literal('ioas_alloc'), ioas: name, ctx: name.optional(), pid: optionalCaller },
  ioas_map: {
    op: z.literal('ioas_map'),
    ioas: name,
    pid: caller,
    uptr: u64,
    length: u64,
    iova: orNull(u64),
    read: z.boolean().default(true),
    write: z.boolean().default(true),
  },
  map_file: {
    op: z.literal('map_file'),
    ioas: name,
    pid: caller,
    file: name,
    start: u64,
    length: u64,
    iova: orNull(u64),
    read: z.boolean().default(true),
    write: z.boolean().default(true),
  },
  ioas_unmap: {
    op: z.literal('ioas_unmap'),
    ioas: name,
    pid: optionalCaller,
    iova: u64.optional(),
    length: u64.optional(),
    all: z.boolean().default(false),
  },
  ioas_copy: {
    op: z.literal('ioas_copy'),
    pid: optionalCaller,
    src: name,
    dst: name,
    src_iova: u64,
    length: u64,
    dst_iova: orNull(u64),
    read: z.boolean().default(true),
    write: z.boolean().default(true),
  },
  ioas_allow_iovas: { op: z.literal('ioas_allow_iovas'), ioas: name, pid: optionalCaller, ranges: z.array(range) },
  ioas_huge_pages: { op: z.literal('ioas_huge_pages'), ioas: name, pid: optionalCaller, enable: z.boolean() },
  add_reserved: { op: z.literal('add_reserved'), ioas: name, pid: optionalCaller, start: u64, last: u64 },
  domain_attach: {
    op: z.literal('domain_attach'),
    domain: name,
    ioas: name,
    pid: optionalCaller,
    kind: z.enum(['mock', 'generic']).default('mock'),
    pgsizes: orNull(
      z
        .array(count(1).refine(isPowerOfTwo, { message: 'expected a power of two' }))
        .min(1, { message: 'expected at least one page size' }),
    ),
    aperture: orNull(
      range.refine(([start, last]) => start <= last, { message: 'aperture start is above its last address' }),
    ),
  },
  domain_detach: { op: z.literal('domain_detach'), domain: name, pid: optionalCaller },
  access_create: {
    op: z.literal('access_create'),
    access: name,
    ioas: name,
    pid: optionalCaller,
    needs_pin_pages: z.boolean().default(true),
    fd: fdNumber.optional(),
  },
  access_destroy: { op: z.literal('access_destroy'), access: name, pid: optionalCaller },
  access_pin: {
    op: z.literal('access_pin'),
    access: name,
    pid: caller,
    iova: u64,
    length: u64,
    write: z.boolean().default(true),
  },
  access_unpin: { op: z.literal('access_unpin'), access: name, pid: optionalCaller, iova: u64, length: u64 },
  access_rw: {
    op: z.literal('access_rw'),
    access: name,
    pid: caller,
    iova: u64,
    length: u64,
    write: z.boolean().default(false),
    data: hexBytes.optional(),
    kthread: z.boolean().optional(),
  },
  access_replace: { op: z.literal('access_replace'), access: name, ioas: name, pid: optionalCaller },
  vfio_unmap: { op: z.literal('vfio_unmap'), ioas: name, pid: optionalCaller, iova: u64, length: u64 },
  change_process: { op: z.literal('change_process'), ctx: name.optional(), pid: caller },
  hw_queue_alloc: {
    op: z.literal('hw_queue_alloc'),
    queue: name,
    ioas: name,
    pid: optionalCaller,
    iova: u64,
    length: u64,
  },
  hw_queue_destroy: { op: z.literal('hw_queue_destroy'), queue: name, pid: optionalCaller },
  // Checks
  check_map: { op: z.literal('check_map'), ioas: name, iova: u64, length: u64, pid: caller, uptr: u64 },
  check_refs: { op: z.literal('check_refs'), pid: caller, uptr: u64, length: u64, refs: count() },
  // File lifetime (version 2)
  fork: { op: z.literal('fork'), pid: caller, child: processName },
  close: { op: z.literal('close'), pid: caller, fd: fdNumber },
  dup: { op: z.literal('dup'), pid: caller, fd: fdNumber, new_fd: fdNumber.optional() },
  send_fd: { op: z.literal('send_fd'), pid: caller, fd: fdNumber, to: processName, new_fd: fdNumber.optional() },
} satisfies Record<TraceOpName, z.ZodRawShape>;

/** The keys of each shape, without the tag, plus `extra` (for "unknown field" messages). */
function fieldsOf<K extends string>(
  kinds: readonly K[],
  shapes: Readonly<Record<K, object>>,
  extra: readonly string[],
): Readonly<Record<K, readonly string[]>> {
  const out: Partial<Record<K, readonly string[]>> = {};
  for (const kind of kinds) {
    out[kind] = [...Object.keys(shapes[kind]).filter((key) => key !== 'op' && key !== 'observed'), ...extra];
  }
  return out as Record<K, readonly string[]>;
}

/** The fields each op takes, `expect` included. */
export const TRACE_OP_FIELDS = fieldsOf(TRACE_OPS, opShapes, ['expect']);

function opSchema<K extends TraceOpName>(op: K) {
  return z.strictObject({ ...opShapes[op], ...common });
}

/** Unmap-all is written the way the ioctl receives it: iova 0, length 2^64 - 1. */
const ioasUnmap = opSchema('ioas_unmap').transform((op, ctx) => {
  const { iova, length, ...rest } = op;
  if (op.all) {
    if (iova !== undefined) ctx.addIssue({ code: 'custom', path: ['iova'], message: 'not allowed with "all": true' });
    if (length !== undefined)
      ctx.addIssue({ code: 'custom', path: ['length'], message: 'not allowed with "all": true' });
    return { ...rest, iova: 0n, length: U64_MAX };
  }
  if (iova === undefined)
    ctx.addIssue({ code: 'custom', path: ['iova'], message: `${MISSING_FIELD} (or "all": true)` });
  if (length === undefined)
    ctx.addIssue({ code: 'custom', path: ['length'], message: `${MISSING_FIELD} (or "all": true)` });
  return { ...rest, iova: iova ?? 0n, length: length ?? 0n };
});

/** `data` is the buffer of a write, so it must be present exactly for writes and match `length`. */
const accessRw = opSchema('access_rw').transform((op, ctx) => {
  const { data, kthread, ...rest } = op;
  if (op.write) {
    if (data === undefined) {
      ctx.addIssue({ code: 'custom', path: ['data'], message: `${MISSING_FIELD} (for "write": true)` });
    } else if (BigInt(data.length / 2) !== op.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: `${data.length / 2} byte${data.length === 2 ? '' : 's'} but length is ${op.length}`,
      });
    }
  } else if (data !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['data'],
      message: 'only for writes ("write": true); put the expected read in "expect": {"data": ...}',
    });
  }
  return { ...rest, data: data ?? null, kthread: kthread ?? op.pid === KTHREAD };
});

/** One op line, defaults applied except the caller `pid` and the `ctx` of `ioas_alloc`. */
export const traceOpSchema = z.discriminatedUnion('op', [
  opSchema('process'),
  opSchema('mmap'),
  opSchema('munmap'),
  opSchema('write'),
  opSchema('read'),
  opSchema('exit'),
  opSchema('rlimit'),
  opSchema('fault'),
  opSchema('temp_memory_limit'),
  opSchema('memfd'),
  opSchema('open'),
  opSchema('ioas_alloc'),
  opSchema('ioas_map'),
  opSchema('map_file'),
  ioasUnmap,
  opSchema('ioas_copy'),
  opSchema('ioas_allow_iovas'),
  opSchema('ioas_huge_pages'),
  opSchema('add_reserved'),
  opSchema('domain_attach'),
  opSchema('domain_detach'),
  opSchema('access_create'),
  opSchema('access_destroy'),
  opSchema('access_pin'),
  opSchema('access_unpin'),
  accessRw,
  opSchema('access_replace'),
  opSchema('vfio_unmap'),
  opSchema('change_process'),
  opSchema('check_map'),
  opSchema('check_refs'),
  opSchema('fork'),
  opSchema('close'),
  opSchema('dup'),
  opSchema('send_fd'),
  opSchema('hw_queue_alloc'),
  opSchema('hw_queue_destroy'),
]);

/** An op as the schema gives it: `pid` (callers) and `ioas_alloc.ctx` may still be absent. */
export type UnresolvedTraceOp = z.output<typeof traceOpSchema>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** Ops whose `pid` stays optional after resolution: omitted, the implicit caller of version 1 applies. */
export type OptionalCallerOp =
  | 'fault'
  | 'temp_memory_limit'
  | 'ioas_alloc'
  | 'ioas_unmap'
  | 'ioas_copy'
  | 'ioas_allow_iovas'
  | 'ioas_huge_pages'
  | 'add_reserved'
  | 'domain_attach'
  | 'domain_detach'
  | 'access_create'
  | 'access_destroy'
  | 'access_unpin'
  | 'access_replace'
  | 'vfio_unmap'
  | 'hw_queue_alloc'
  | 'hw_queue_destroy';
type Required<T> = T extends { op: OptionalCallerOp } ? 'ctx' : 'pid' | 'ctx';
type Resolved<T> = T extends unknown
  ? Simplify<Omit<T, Required<T>> & { [K in Extract<keyof T, Required<T>>]-?: Exclude<T[K], undefined> }>
  : never;

/** An op ready to replay: every default applied, the caller and context named. */
export type TraceOp = Resolved<UnresolvedTraceOp>;
export type TraceOpOf<K extends TraceOpName> = Extract<TraceOp, { op: K }>;

// ---------------------------------------------------------------------------------------------------------
// Observations

const observationShapes = {
  iommu_map: { observed: z.literal('iommu_map'), domain: name, iova: u64, paddr: u64, size: u64 },
  iommu_unmap: { observed: z.literal('iommu_unmap'), domain: name, iova: u64, size: u64, unmapped: u64 },
  pin: { observed: z.literal('pin'), pfn: count(), count: count(1) },
  unpin: { observed: z.literal('unpin'), pfn: count(), count: count(1) },
  warn: { observed: z.literal('warn'), site: z.string().min(1, { message: 'expected a non-empty site' }) },
  result: {
    observed: z.literal('result'),
    errno: errnoOrOk.default('ok'),
    iova: u64.optional(),
    unmapped: u64.optional(),
    data: hexBytes.optional(),
    pfns: z.array(pfnRun).optional(),
  },
} satisfies Record<ObservationKind, z.ZodRawShape>;

/** The fields each observation kind takes. */
export const OBSERVATION_FIELDS = fieldsOf(OBSERVATION_KINDS, observationShapes, []);

/** A `{"observed": KIND, ...}` line: what the real kernel did during the op before it. */
export const observationSchema = z.discriminatedUnion('observed', [
  z.strictObject(observationShapes.iommu_map),
  z.strictObject(observationShapes.iommu_unmap),
  z.strictObject(observationShapes.pin),
  z.strictObject(observationShapes.unpin),
  z.strictObject(observationShapes.warn),
  z.strictObject(observationShapes.result),
]);
export type Observation = z.output<typeof observationSchema>;
