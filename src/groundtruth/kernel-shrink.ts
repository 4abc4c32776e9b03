// SPDX-License-Identifier: GPL-2.0-only
/**
 * Shrinking a disagreement between the kernel and the model with the kernel in the loop. A boot is costly
 * and a trace in it is cheap, so each round sends a whole generation of candidates through one boot: the
 * current trace itself (is the disagreement still there?), the cut after the op where it shows, and every
 * complement of ddmin at every granularity (drop one of 2, 4, 8 ... chunks, down to every single op), each
 * closed over its dependencies (fuzz/shrink.ts withoutOps). The smallest candidate that still shows the
 * same disagreement becomes the current trace; when no candidate does, every single-op removal has been
 * tried and the trace is 1-minimal. `maxBoots` bounds the rounds.
 */
import type { TraceHeader, TraceOp } from '../events/trace.js';
import { withoutOps } from '../fuzz/shrink.js';
import { serializeTrace } from '../fuzz/write.js';
import type { VariantSpec } from '../kernel/variants.js';
import { parseTraceText } from '../replay/parse.js';
import type { ParsedTrace } from '../replay/parse.js';
import type { KernelBuild, Say } from './kernel-build.js';
import { compareRun, modelRun, kernelOutputOf } from './kernel-run.js';
import type { Disagreement } from './kernel-run.js';
import { runOnKernel } from './runner.js';

/**
 * What makes two disagreements the same: the kind, the op, and both answers where they are names (errno,
 * check answers, WARN sites); for values and data, which change with every shrink, the kind and op alone.
 */
export function disagreementKey(d: Pick<Disagreement, 'kind' | 'name' | 'kernel' | 'model'>): string {
  if (d.kind === 'value' || d.kind === 'data' || d.kind === 'missing') return `${d.kind} ${d.name}`;
  return `${d.kind} ${d.name}: kernel ${d.kernel}, model ${d.model}`;
}

export interface KernelShrinkResult {
  ops: TraceOp[];
  before: number;
  after: number;
  /** The disagreement as the shrunk trace shows it. */
  disagreement: Disagreement;
  boots: number;
  candidates: number;
  /** The rounds ran out before a round found nothing smaller. */
  exhausted: boolean;
  /** The current trace stopped showing the disagreement in a later boot (the kernel's answer varies). */
  flaky: boolean;
}

export interface KernelShrinkOptions {
  kernel: KernelBuild;
  variant: VariantSpec & { label?: string };
  key: string;
  maxBoots: number;
  /** The most candidates one boot carries (the finest chunks are dropped first when there are more). */
  maxCandidates?: number;
  say: Say;
}

function parseOps(header: TraceHeader, ops: readonly TraceOp[]): ParsedTrace | null {
  try {
    return parseTraceText(serializeTrace({ header, ops }));
  } catch {
    return null;
  }
}

/** The candidates of one round, smallest first after the trace itself; each a distinct valid trace. */
export function shrinkCandidates(
  header: TraceHeader,
  ops: readonly TraceOp[],
  cutAfter: number | null,
  max: number,
): TraceOp[][] {
  const seen = new Set<string>();
  const out: TraceOp[][] = [];
  const add = (cand: TraceOp[]): void => {
    const text = serializeTrace({ header, ops: cand });
    if (seen.has(text) || out.length >= max || parseOps(header, cand) === null) return;
    seen.add(text);
    out.push(cand);
  };
  add([...ops]);
  if (cutAfter !== null && cutAfter < ops.length) {
    const rest = new Set<number>();
    for (let i = cutAfter; i < ops.length; i++) rest.add(i);
    add(withoutOps(ops, rest));
  }
  for (let n = 2; ; n *= 2) {
    const chunk = Math.max(1, Math.ceil(ops.length / n));
    for (let start = 0; start < ops.length; start += chunk) {
      const remove = new Set<number>();
      for (let i = start; i < Math.min(ops.length, start + chunk); i++) remove.add(i);
      const cand = withoutOps(ops, remove);
      if (cand.length < ops.length) add(cand);
    }
    if (chunk === 1) break;
  }
  return out;
}

/** Shrink `ops` while the kernel and the model keep disagreeing the way `key` says. */
export async function shrinkOnKernel(
  header: TraceHeader,
  ops: readonly TraceOp[],
  first: Disagreement,
  opts: KernelShrinkOptions,
): Promise<KernelShrinkResult> {
  let cur = [...ops];
  let shown = first;
  let boots = 0;
  let candidates = 0;
  let exhausted = true;
  let flaky = false;
  while (boots < opts.maxBoots) {
    const cands = shrinkCandidates(header, cur, shown.op <= cur.length ? shown.op : null, opts.maxCandidates ?? 400);
    const inputs = cands.map((c, i) => ({ name: `cand${i}`, trace: parseOps(header, c) as ParsedTrace }));
    const run = await runOnKernel(opts.kernel, inputs, { say: opts.say, maxBoots: 2 });
    boots += run.boots.length;
    candidates += cands.length;
    let best: { ops: TraceOp[]; d: Disagreement } | null = null;
    let stillShown = false;
    inputs.forEach((input, i) => {
      const out = kernelOutputOf(run.runs.get(input.name));
      const cmp = compareRun(input.trace, out, modelRun(input.trace, opts.variant));
      const d = cmp.disagreements.find((x) => disagreementKey(x) === opts.key);
      if (d === undefined) return;
      if (i === 0) stillShown = true;
      const cand = cands[i] as TraceOp[];
      if (best === null || cand.length < best.ops.length) best = { ops: cand, d };
    });
    if (!stillShown) flaky = true;
    const found = best as { ops: TraceOp[]; d: Disagreement } | null;
    if (found === null || found.ops.length >= cur.length) {
      if (found !== null) shown = found.d;
      exhausted = false;
      break;
    }
    opts.say(
      `shrinking on the kernel: ${cur.length} -> ${found.ops.length} ops (${cands.length} candidates this boot)`,
    );
    cur = found.ops;
    shown = found.d;
  }
  return { ops: cur, before: ops.length, after: cur.length, disagreement: shown, boots, candidates, exhausted, flaky };
}
