// SPDX-License-Identifier: GPL-2.0-only
/**
 * One cursor step as data: the op, its trace line and errno, the digest it lands on (checked against the
 * run's record, forward by the cursor and back here), and its immer patches as readable text. What
 * `ioptrace step --json` prints per step and what the browser view highlights.
 */
import { Immer, enablePatches } from 'immer';
import type { Patch } from 'immer';
import type { StoredOp } from '../store/index.js';
import { digestHex } from '../lib/digest.js';
import { InternalError } from '../lib/errors.js';
import { hex } from '../lib/format.js';
import { kernelField, kernelStatePath } from '../state/kernel-names.js';
import type { Cursor, Step } from './cursor.js';

enablePatches();
// Only used to read old values while re-applying a step's patches; the result is discarded.
const immer = new Immer({ autoFreeze: false });

export const DEFAULT_MAX_PATCHES = 40;
/** A value's text is cut here: a patch may add a whole record with its trees. */
const MAX_VALUE_CHARS = 160;
/** Nested objects deeper than this print as `{…}`, longer arrays as `[N items]`. */
const MAX_DEPTH = 2;
const MAX_ARRAY_ITEMS = 8;

type PathPart = string | number;

/** One patch of a step, readable: `replace pages.3.npinned 0 -> 512` (kernel names: kernel-names.ts). */
export interface RenderedPatch {
  op: Patch['op'];
  path: PathPart[];
  /** The value the path held before this patch (absent for an add). */
  from?: string;
  /** The value it holds after (absent for a remove). */
  to?: string;
  text: string;
}

export interface StepReport {
  direction: Step['direction'];
  /** The op applied (forward) or undone (back). */
  op: number;
  line: number;
  name: string;
  errno: string | null;
  firstSeq: number;
  lastSeq: number;
  /** The op the cursor sits after once the step is done, and its digest as computed and as recorded. */
  landsAfter: number;
  digest: string;
  patchCount: number;
  patches: RenderedPatch[];
}

// PFNs and virtual page numbers read as hex; which one a bare number is depends on the structure it sits in.
const HEX_FIELDS = new Set(['pfn', 'nextPfn', 'oldPfn', 'newPfn', 'vpn', 'lo', 'hi']);
const PAGE_NUMBER_TREES = new Set(['frames', 'pt', 'vmas']);
const PAGE_NUMBER_FIELDS = new Set(['keys', 'start', 'index']);

/** Whether a number under `path` at `field` is a PFN, a page number or a digest half. */
function isHexNumber(path: readonly PathPart[], field: string): boolean {
  if (HEX_FIELDS.has(field)) return true;
  if (!PAGE_NUMBER_FIELDS.has(field)) return false;
  return path.some((p) => typeof p === 'string' && PAGE_NUMBER_TREES.has(p));
}

function isDigest(value: object): value is { lo: number; hi: number } {
  const keys = Object.keys(value);
  return keys.length === 2 && 'lo' in value && 'hi' in value;
}

function valueText(value: unknown, path: readonly PathPart[], field: string, depth: number): string {
  if (value === undefined) return '(none)';
  if (value === null) return 'null';
  if (typeof value === 'bigint') return field === 'memlock' ? value.toString() : hex(value);
  if (typeof value === 'number') return isHexNumber(path, field) ? hex(value) : String(value);
  if (typeof value === 'string') return value === '' ? '""' : value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (Array.isArray(value)) {
    if (depth >= MAX_DEPTH || value.length > MAX_ARRAY_ITEMS) return `[${value.length} items]`;
    return `[${value.map((v: unknown) => valueText(v, path, field, depth + 1)).join(', ')}]`;
  }
  if (typeof value === 'object') {
    if (isDigest(value)) return digestHex(value);
    if (depth >= MAX_DEPTH) return '{…}';
    // A whole record (`accesses.mdev`) names its fields as its table's kernel object does.
    const table = path.length === 1 && depth === 0 ? String(path[0]) : '';
    const parts = Object.entries(value as Record<string, unknown>).map(
      ([k, v]) => `${kernelField(table, k)} ${valueText(v, [...path, field], k, depth + 1)}`,
    );
    return `{${parts.join(', ')}}`;
  }
  return String(value);
}

function shortValue(value: unknown, path: readonly PathPart[]): string {
  const parent = path.slice(0, -1);
  // An array element is named by its array (`keys.0` is a key), anything else by its own name.
  const last = path[path.length - 1];
  const field =
    typeof last === 'number' || /^\d+$/.test(String(last ?? ''))
      ? String(parent[parent.length - 1] ?? '')
      : String(last ?? '');
  const text = valueText(value, parent, field, 0);
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

function readPath(root: unknown, path: readonly PathPart[]): unknown {
  let at: unknown = root;
  for (const p of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<PathPart, unknown>)[p];
  }
  return at;
}

/**
 * The first `max` patches of a step as text. Old values are read just before each patch is applied, on a
 * draft of the state before the step: reading them all from that state would misplace array elements
 * once an earlier patch of the same step has shifted them.
 */
export function renderPatches(before: object, patches: readonly Patch[], max: number): RenderedPatch[] {
  const shown = patches.slice(0, max);
  const out: RenderedPatch[] = [];
  immer.produce(before, (draft) => {
    for (const patch of shown) {
      const path = [...patch.path];
      const where = kernelStatePath(path);
      const from = patch.op === 'add' ? undefined : shortValue(readPath(draft, path), path);
      const to = patch.op === 'remove' ? undefined : shortValue(patch.value, path);
      const text =
        patch.op === 'add'
          ? `add ${where} ${to}`
          : patch.op === 'remove'
            ? `remove ${where} (was ${from})`
            : `replace ${where} ${from} -> ${to}`;
      out.push({
        op: patch.op,
        path,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        text,
      });
      immer.applyPatches(draft, [patch]);
    }
  });
  return out;
}

function opRow(ops: ReadonlyMap<number, StoredOp>, index: number): StoredOp {
  const row = ops.get(index);
  if (row === undefined) throw new InternalError(`op ${index} is missing from the stored run`);
  return row;
}

/** One step of the cursor as `step --json` prints it; a step back is checked against the recorded digest. */
export function renderStep(
  step: Step,
  before: object,
  cursor: Cursor,
  ops: ReadonlyMap<number, StoredOp>,
  maxPatches: number,
): StepReport {
  const row = opRow(ops, step.op);
  const digest = digestHex(cursor.state.digest);
  // The cursor checks forward steps itself; a step back is checked here against the op it lands after.
  if (step.direction === 'back') {
    const recorded = opRow(ops, cursor.op).digest;
    if (digest !== recorded) {
      throw new InternalError(
        `op ${step.op}: stepping back gives digest ${digest}, the run recorded ${recorded} after op ${cursor.op}`,
      );
    }
  }
  return {
    direction: step.direction,
    op: step.op,
    line: row.line,
    name: row.op,
    errno: row.errno,
    firstSeq: step.firstSeq,
    lastSeq: step.lastSeq,
    landsAfter: cursor.op,
    digest,
    patchCount: step.patches.length,
    patches: renderPatches(before, step.patches, maxPatches),
  };
}
