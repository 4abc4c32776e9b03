// SPDX-License-Identifier: GPL-2.0-only
/**
 * A fuzz farm worker that dies holding a claim loses nothing (src/fuzz/farm.ts, claims.ts), on SQLite and
 * PostgreSQL. The reference is a clean campaign over the same seeds into a store of its own: a worker killed
 * (SIGKILL, from the afterClaim test hook) right after its first claim, then a rerun of the same seeds, must
 * leave a store with the reference's failures, counts and seeds, each with its trace run and reproducer run
 * of the reference's heads, and no other run. A claim held on another machine waits out its lease; once the
 * lease has run out the next worker takes it over.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { fuzzIntoStore, type FarmOptions, type FarmWorkerReport } from '../../src/fuzz/farm.js';
import { resolveVariant } from '../../src/kernel/variants.js';
import {
  claimFailureQuery,
  farmFailuresQuery,
  openClaimsQuery,
  openStore,
  renewClaimQuery,
} from '../../src/store/index.js';
import { childLines } from '../support/child-lines.js';
import { freshDatabase } from '../support/pg-server.js';
import { tempDir } from '../support/store-rows.js';

const pgUrl = inject('pgUrl');
const root = fileURLToPath(new URL('../..', import.meta.url));
const viteNode = join(root, 'node_modules/vite-node/vite-node.mjs');
const workerScript = join(root, 'tests/support/children/farm-worker.ts');
/** Seeds 1..4 of v3 at 40 ops: five distinct failures, all first shown by seed 3. */
const ITERATIONS = 4;
const tmp = tempDir();
afterAll(() => tmp.remove());

/** One in-process worker as tests/support/children/farm-worker.ts runs it, without the kill. */
async function campaign(db: string, extra: Partial<FarmOptions> = {}): Promise<FarmWorkerReport> {
  const store = await openStore(db);
  try {
    return await fuzzIntoStore({
      store,
      variant: 'v3',
      label: 'v3',
      fixes: resolveVariant('v3').fixes,
      seed: 1,
      stride: 1,
      maxOps: 40,
      iterations: ITERATIONS,
      shrinkBudget: 10,
      dir: 'farm',
      ...extra,
    });
  } finally {
    await store.close();
  }
}

/** The store's failures, each with the heads of its runs, and every run's id; the store must verify. */
async function contents(db: string) {
  const store = await openStore(db, { readonly: true });
  try {
    expect((await store.verify()).ok).toBe(true);
    const runs = await store.runs();
    const head = (id: number | null) => {
      const run = runs.find((r) => r.id === id);
      return run === undefined ? null : [run.status, run.headHash, run.opsHeadHash];
    };
    const failures = (await store.query(farmFailuresQuery('v3'))).map((f) => ({
      key: `${f.kind} ${f.fn}`,
      seed: f.seed,
      ops: f.ops,
      op: f.op,
      detail: f.detail,
      count: f.count,
      reproducerOps: f.reproducerOps,
      trace: head(f.traceRun),
      reproducer: head(f.reproducerRun),
    }));
    const attached = (await store.query(farmFailuresQuery('v3'))).flatMap((f) => [f.traceRun, f.reproducerRun]);
    const ascending = (ids: (number | null)[]) => ids.map(Number).sort((a, b) => a - b);
    return { failures, runs: ascending(runs.map((r) => r.id)), attached: ascending(attached) };
  } finally {
    await store.close();
  }
}

const backends: [string, () => Promise<string>][] = [
  ['SQLite', () => Promise.resolve(join(tmp.dir, `farm-${Math.random().toString(36).slice(2)}.db`))],
];
if (pgUrl !== '') backends.push(['PostgreSQL', () => freshDatabase(pgUrl)]);

describe.each(backends)('a farm worker that dies holding a claim, on %s', (_backend, newStore) => {
  let reference: Awaited<ReturnType<typeof contents>>;
  let first: string;

  beforeAll(async () => {
    const db = await newStore();
    const clean = await campaign(db);
    expect(clean.adopted).toEqual([]);
    expect(clean.claimed).toHaveLength(5);
    const claimed = clean.claimed[0]?.finding;
    first = `${claimed?.kind} ${claimed?.fn}`;
    reference = await contents(db);
    expect(reference.failures.map((f) => [f.key, f.seed, f.count])).toEqual([
      ['double_unpin batch_unpin', 3, 1],
      ['warn iommu_unmap_nofail', 3, 1],
      ['warn iopt_pages_sub_npinned', 3, 1],
      ['warn iopt_release_pages', 3, 1],
      ['warn pfn_reader_destroy', 3, 1],
    ]);
    // Two runs per failure, every one attached, all finished.
    expect(reference.runs).toEqual(reference.attached);
    expect(reference.runs).toHaveLength(10);
    for (const f of reference.failures) expect([f.trace?.[0], f.reproducer?.[0]]).not.toContain('running');
  });

  it('killed right after its claim: a rerun takes the claim over and the store ends as the clean one', async () => {
    const db = await newStore();
    await (await openStore(db)).close();
    const victim = spawn(process.execPath, [viteNode, workerScript, db, String(ITERATIONS)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exit = new Promise<NodeJS.Signals | null>((resolve) => victim.on('exit', (_code, signal) => resolve(signal)));
    const lines = await childLines(victim, (l) => l.some((line) => /^(claimed|no claim)/.test(line)));
    expect(lines).toEqual([`claimed ${first}`]);
    expect(await exit).toBe('SIGKILL');

    // What the kill left: the hits of seeds 1..3, one claim held by the dead process, no runs.
    const left = await openStore(db, { readonly: true });
    try {
      const claims = await left.query(openClaimsQuery('v3'));
      expect(claims.map((c) => [`${c.kind} ${c.fn}`, c.seed, c.claimant?.split('/')[1]])).toEqual([
        [first, 3, String(victim.pid)],
      ]);
      expect(await left.runs()).toEqual([]);
    } finally {
      await left.close();
    }

    const rerun = await campaign(db);
    expect(rerun.adopted.map((c) => [`${c.finding.kind} ${c.finding.fn}`, c.finding.seed])).toEqual([[first, 3]]);
    expect(rerun.claimed.map((c) => `${c.finding.kind} ${c.finding.fn}`).sort()).toEqual(
      reference.failures.map((f) => f.key).filter((k) => k !== first),
    );
    const after = await contents(db);
    expect(after.failures).toEqual(reference.failures);
    expect(after.runs).toEqual(after.attached);
    expect(after.runs).toHaveLength(10);
    const store = await openStore(db, { readonly: true });
    try {
      expect(await store.query(openClaimsQuery('v3'))).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a claim held on another machine waits for its lease; once it ran out, the next worker takes it over', async () => {
    const db = await newStore();
    const abroad = { claimant: 'elsewhere.invalid/1/ab', leaseUntil: Date.now() + 3_600_000 };
    const [kind, fn] = first.split(' ') as [string, string];
    const held = reference.failures.find((f) => f.key === first);
    const identity = { variant: 'v3', kind, fn };
    const store = await openStore(db);
    try {
      const claim = { ...identity, seed: 3, ops: 40, op: held?.op ?? 0, detail: held?.detail ?? '' };
      expect(await store.query(claimFailureQuery(claim, abroad))).toBe(true);
    } finally {
      await store.close();
    }
    const waiting = await campaign(db);
    expect(waiting.adopted).toEqual([]);
    expect(waiting.claimed).toHaveLength(4);
    const before = await contents(db);
    expect(before.failures.find((f) => f.key === first)).toMatchObject({ trace: null, reproducer: null, count: 1 });

    // The holder abroad last renewed a lease that has ended.
    const lapse = await openStore(db);
    try {
      expect(await lapse.query(renewClaimQuery(identity, { ...abroad, leaseUntil: 0 }))).toBe(true);
    } finally {
      await lapse.close();
    }
    const next = await campaign(db);
    expect(next.adopted.map((c) => `${c.finding.kind} ${c.finding.fn}`)).toEqual([first]);
    expect(next.claimed).toEqual([]);
    const after = await contents(db);
    expect(after.failures).toEqual(reference.failures);
    expect(after.runs).toEqual(after.attached);
  });
});
