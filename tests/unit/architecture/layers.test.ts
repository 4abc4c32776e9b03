// SPDX-License-Identifier: GPL-2.0-only
/**
 * The import graph of src/ against the layer table (layers.json, which eslint.config.js enforces too): no
 * import circle between files, every import goes to the importer's own folder or to a lower tier, and every
 * folder of src/ has a place in the table. Type-only and dynamic imports count like the others.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../..');
const SRC = join(ROOT, 'src');

interface Tier {
  name: string;
  folders: string[];
}
const { tiers } = JSON.parse(readFileSync(join(ROOT, 'layers.json'), 'utf8')) as { tiers: Tier[] };
const rankOf = new Map(tiers.flatMap((t, rank) => t.folders.map((f) => [f, rank] as const)));

/** The layer unit of a file under src/: its top folder, or the file itself at the top. */
function unitOf(file: string): string {
  return relative(SRC, file).split('/')[0] ?? '';
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

const SPECIFIER =
  /(?:\bimport|\bexport)\s[^;]*?\bfrom\s*'([^']+)'|\bimport\s*\(\s*'([^']+)'\s*\)|^\s*import\s+'([^']+)'/gms;

/** Relative imports of a file, resolved to .ts paths. Comments are dropped first so prose is not parsed. */
function importsOf(file: string, text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"])\/\/.*$/gm, '$1');
  const out: string[] = [];
  for (const m of code.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3] ?? '';
    if (!spec.startsWith('.')) continue;
    out.push(normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'));
  }
  return out;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f, readFileSync(f, 'utf8'))]));
const rel = (f: string) => relative(ROOT, f);

/** Every import circle (strongly connected component of more than one file, or a file importing itself). */
function circles(g: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  // Iterative Tarjan: a recursive walk would be bounded by the call stack, not by the graph.
  for (const root of g.keys()) {
    if (index.has(root)) continue;
    const work: [string, number][] = [[root, 0]];
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [v, i] = top;
      if (i === 0) {
        index.set(v, next);
        low.set(v, next);
        next += 1;
        stack.push(v);
        onStack.add(v);
      }
      const edges = g.get(v) ?? [];
      if (i < edges.length) {
        top[1] = i + 1;
        const w = edges[i]!;
        if (!index.has(w)) work.push([w, 0]);
        else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent[0], Math.min(low.get(parent[0])!, low.get(v)!));
      if (low.get(v) === index.get(v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1 || edges.includes(v)) out.push(component.map(rel).sort());
      }
    }
  }
  return out;
}

describe('the import graph of src/', () => {
  it('is read: every source file, and the imports of the ones that have them', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(graph.get(join(SRC, 'state/state.ts'))).toContain(join(SRC, 'state/records.ts'));
    expect(graph.get(join(SRC, 'kernel/io-pagetable.ts'))).toContain(join(SRC, 'kernel/access-ops.ts'));
  });

  it('resolves every relative import to a file that exists', () => {
    const missing = [...graph].flatMap(([f, to]) =>
      to.filter((t) => !graph.has(t)).map((t) => `${rel(f)} -> ${rel(t)}`),
    );
    // migrations/ is outside src/ and below everything: the store's schema.
    expect(missing.filter((m) => !m.endsWith('-> migrations/index.ts'))).toEqual([]);
  });

  it('has no import circle', () => {
    expect(circles(graph)).toEqual([]);
  });

  it('places every folder of src/ in the layer table', () => {
    const units = [...new Set(files.map(unitOf))].sort();
    expect(units.filter((u) => !rankOf.has(u))).toEqual([]);
  });

  it('imports only within a folder or from a lower tier', () => {
    const upward: string[] = [];
    for (const [from, targets] of graph) {
      for (const to of targets) {
        if (!to.startsWith(`${SRC}/`)) continue;
        const a = unitOf(from);
        const b = unitOf(to);
        if (a === b) continue;
        if ((rankOf.get(b) ?? Infinity) >= (rankOf.get(a) ?? -1)) upward.push(`${rel(from)} -> ${rel(to)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('finds circles and upward imports when there are some (the checks above can fail)', () => {
    const a = join(SRC, 'x/a.ts');
    const b = join(SRC, 'x/b.ts');
    const c = join(SRC, 'x/c.ts');
    expect(
      circles(
        new Map([
          [a, [b]],
          [b, [c]],
          [c, [a]],
        ]),
      ),
    ).toEqual([['src/x/a.ts', 'src/x/b.ts', 'src/x/c.ts']]);
    expect(
      circles(
        new Map([
          [a, [b]],
          [b, []],
        ]),
      ),
    ).toEqual([]);
    const parsed = importsOf(join(SRC, 'state/z.ts'), "import type { X } from '../cli/main.js';\n// from '../y.js'\n");
    expect(parsed).toEqual([join(SRC, 'cli/main.ts')]);
  });
});
