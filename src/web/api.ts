// SPDX-License-Identifier: GPL-2.0-only
/**
 * The JSON API of `ioptrace serve`: one route per question, each query parsed with zod (a bad or unknown
 * parameter is a 400 naming it), each answer built by the same function as the CLI's `--json` (answers.ts,
 * auditJson, bisectJson), so a script gets from the server exactly what it gets from the command line.
 * Routes only read the store.
 */
import { z } from 'zod';
import { auditJson, auditRun } from '../audit/index.js';
import { bisectRuns } from '../bisect/bisect-runs.js';
import { bisectJson } from '../bisect/render.js';
import { EVENT_TYPES } from '../events/events.js';
import { BadInputError, NotFoundError } from '../lib/errors.js';
import { opsInOrder } from '../store/index.js';
import type { Store } from '../store/index.js';
import type { Cursor, EventSource } from '../timetravel/index.js';
import {
  DEFAULT_MAX_PATCHES,
  diffAnswer,
  eventsAnswer,
  opOfSeq,
  requireRun,
  runsAnswer,
  stateAnswer,
  stateAt,
  stepAnswer,
  watchAnswer,
  whyAnswer,
} from '../timetravel/index.js';
import { findingCounts, runFindings } from './findings.js';
import { DEFAULT_VIEW_MAX, stateView } from './state-view.js';

/** A non-negative integer parameter: decimal or 0x hex, as the CLI takes them. */
const int = z
  .string()
  .regex(/^(0x[0-9a-fA-F]+|\d+)$/, { message: 'expected a non-negative integer (decimal or 0x hex)' })
  .transform((text) => (text.startsWith('0x') || text.startsWith('0X') ? Number.parseInt(text, 16) : Number(text)))
  .refine(Number.isSafeInteger, { message: 'too large' });
const bool = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');

const QUERIES = {
  runs: z.strictObject({}),
  run: z.strictObject({}),
  events: z.strictObject({
    from: int.optional(),
    to: int.optional(),
    type: z
      .string()
      .transform((t) => t.split(',').filter((s) => s !== ''))
      .pipe(z.array(z.enum(EVENT_TYPES as [string, ...string[]])))
      .optional(),
    op: int.optional(),
  }),
  state: z.strictObject({ seq: int }),
  view: z.strictObject({ seq: int, max: int.optional() }),
  step: z.strictObject({ from: int, to: int, back: bool.optional(), max: int.optional() }),
  diff: z.strictObject({ a: int, b: int }),
  why: z
    .strictObject({
      pfn: int.optional(),
      index: z
        .string()
        .regex(/^\d+:\d+$/, { message: 'expected PAGES:INDEX, e.g. 3:17' })
        .transform((t) => t.split(':').map(Number) as [number, number])
        .optional(),
    })
    .refine((q) => (q.pfn === undefined) !== (q.index === undefined), {
      message: 'give exactly one of pfn and index',
      path: ['pfn'],
    }),
  watch: z.strictObject({ expr: z.string().min(1, { message: 'expected an expression' }), from: int.optional() }),
  audit: z.strictObject({ user: int.optional(), pid: z.string().min(1).optional(), pages: int.optional() }),
  bisect: z.strictObject({ a: int, b: int, align: z.enum(['same', 'prefix']).optional(), strict: bool.optional() }),
} as const;

type QueryName = keyof typeof QUERIES;

/** Parses a query with its schema; the first issue becomes a BadInputError naming the parameter. */
export function parseQuery<N extends QueryName>(name: N, params: URLSearchParams): z.output<(typeof QUERIES)[N]> {
  const raw: Record<string, string> = {};
  for (const [k, v] of params) {
    if (k in raw) throw new BadInputError(`query parameter ${k}: given twice`, { field: k });
    raw[k] = v;
  }
  const parsed = QUERIES[name].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field =
      issue?.code === 'unrecognized_keys' ? (issue.keys[0] ?? '') : (issue?.path.map(String).join('.') ?? '');
    const message =
      issue?.code === 'unrecognized_keys'
        ? `unknown query parameter ${field}`
        : issue?.code === 'invalid_type' && raw[field] === undefined
          ? `query parameter ${field}: required`
          : `query parameter ${field}: ${issue?.message ?? 'invalid'}`;
    throw new BadInputError(message, { field });
  }
  return parsed.data as z.output<(typeof QUERIES)[N]>;
}

/**
 * What the server keeps between requests: a cursor per run, so stepping back applies inverse patches, and
 * the event source of each finished run, so a view does not read the run row and the snapshot list again
 * for every event the page asks for.
 */
export interface ApiContext {
  store: Store;
  cursor(run: number): Promise<Cursor>;
  /** The run as an EventSource (NotFoundError naming the run when the store has none). */
  source(run: number): Promise<EventSource>;
}

export type Route = (ctx: ApiContext, params: URLSearchParams, run: number | null) => Promise<unknown>;

function need(run: number | null): number {
  if (run === null) throw new NotFoundError('no run in the path', 'run', -1);
  return run;
}

/** GET /api/<name> and GET /api/runs/RUN/<name>. */
export const ROUTES: Record<string, Route> = {
  async runs(ctx, params) {
    parseQuery('runs', params);
    const runs = await runsAnswer(ctx.store);
    return runs;
  },
  /** The runs list of the page: each run with its findings counted by kind (no CLI twin). */
  async 'runs-findings'(ctx, params) {
    parseQuery('runs', params);
    const runs = await runsAnswer(ctx.store);
    const out = [];
    for (const r of runs) {
      out.push({ ...r, findings: findingCounts(await runFindings(ctx.store, r.id, opsInOrder(ctx.store, r.id))) });
    }
    return out;
  },
  /** One run for the page: its row, its ops (the timeline) and its findings where they happened. */
  async run(ctx, params, run) {
    parseQuery('run', params);
    const row = await requireRun(ctx.store, need(run));
    const ops = await ctx.store.ops(row.id);
    const findings = await runFindings(ctx.store, row.id, ops);
    return {
      run: row,
      ops: ops.map((o) => ({
        index: o.index,
        line: o.line,
        op: o.op,
        errno: o.errno,
        result: o.result,
        firstSeq: o.firstSeq,
        lastSeq: o.lastSeq,
        digest: o.digest,
      })),
      findings,
      counts: findingCounts(findings),
    };
  },
  async events(ctx, params, run) {
    const q = parseQuery('events', params);
    return eventsAnswer(ctx.store, need(run), {
      ...(q.from !== undefined ? { fromSeq: q.from } : {}),
      ...(q.to !== undefined ? { toSeq: q.to } : {}),
      ...(q.type !== undefined ? { types: q.type } : {}),
      ...(q.op !== undefined ? { op: q.op } : {}),
    });
  },
  async state(ctx, params, run) {
    const q = parseQuery('state', params);
    const { opRow: _op, ...answer } = await stateAnswer(ctx.store, need(run), q.seq);
    return answer;
  },
  async view(ctx, params, run) {
    const q = parseQuery('view', params);
    const r = need(run);
    const state = await stateAt(await ctx.source(r), q.seq);
    const op = await opOfSeq(ctx.store, r, q.seq);
    return {
      run: r,
      seq: q.seq,
      op: op?.index ?? null,
      line: op?.line ?? null,
      view: stateView(state, q.max ?? DEFAULT_VIEW_MAX),
    };
  },
  async step(ctx, params, run) {
    const q = parseQuery('step', params);
    const r = need(run);
    await requireRun(ctx.store, r);
    const query = { from: q.from, to: q.to, back: q.back ?? false, maxPatches: q.max ?? DEFAULT_MAX_PATCHES };
    return stepAnswer(ctx.store, r, query, await ctx.cursor(r));
  },
  async diff(ctx, params, run) {
    const q = parseQuery('diff', params);
    return diffAnswer(ctx.store, need(run), q.a, q.b);
  },
  async why(ctx, params, run) {
    const q = parseQuery('why', params);
    const target = q.pfn !== undefined ? { pfn: q.pfn } : { pages: q.index?.[0] ?? 0, index: q.index?.[1] ?? 0 };
    return whyAnswer(ctx.store, need(run), target);
  },
  async watch(ctx, params, run) {
    const q = parseQuery('watch', params);
    return watchAnswer(ctx.store, need(run), q.expr, q.from ?? 0);
  },
  async audit(ctx, params, run) {
    const q = parseQuery('audit', params);
    const filter = {
      ...(q.user !== undefined ? { user: q.user } : {}),
      ...(q.pid !== undefined ? { pid: q.pid } : {}),
      ...(q.pages !== undefined ? { pages: q.pages } : {}),
    };
    return auditJson(await auditRun(ctx.store, need(run), filter, { ops: false }));
  },
  async bisect(ctx, params) {
    const q = parseQuery('bisect', params);
    const report = await bisectRuns(ctx.store, q.a, q.b, { align: q.align ?? 'same', strict: q.strict ?? false });
    return bisectJson(report);
  },
};

/** Routes under /api/runs/RUN/ (the others are /api/NAME). */
export const RUN_ROUTES = new Set(['run', 'events', 'state', 'view', 'step', 'diff', 'why', 'watch', 'audit']);
