// SPDX-License-Identifier: GPL-2.0-only
/**
 * `npm run lint` fails on an upward import: the repository's own eslint.config.js, run through ESLint's
 * Node API on the text of real src/ files with one import added. Type-aware rules are switched off here
 * (they need the whole program and are not what is checked); the layer rules are the config's own.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../..');
const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });

/** The no-restricted-imports messages for `file` with `line` added at the top. */
async function layerErrors(file: string, line: string): Promise<string[]> {
  const text = `${line}\n${readFileSync(join(ROOT, file), 'utf8')}`;
  const [result] = await eslint.lintText(text, { filePath: join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const message = (spec: string, from: string, fromTier: string, to: string, toTier: string) =>
  `'${spec}' import is restricted from being used by a pattern. layers: src/${from} (tier "${fromTier}") may not import src/${to} (tier "${toTier}"); see layers.json and docs/architecture.md.`;

describe('eslint.config.js enforces the layers', () => {
  it('passes the files as they are', async () => {
    expect(await layerErrors('src/state/state.ts', '')).toEqual([]);
    expect(await layerErrors('src/bisect/scan.ts', '')).toEqual([]);
  });

  it('fails state importing the CLI', async () => {
    expect(await layerErrors('src/state/state.ts', "import type { Command } from '../cli/command.js';")).toEqual([
      message('../cli/command.js', 'state', 'state and store', 'cli', 'front ends'),
    ]);
  });

  it('fails a reducer two folders down importing the kernel', async () => {
    expect(
      await layerErrors('src/state/reducers/lookup.ts', "import { pagesOf } from '../../kernel/pages-state.js';"),
    ).toEqual([message('../../kernel/pages-state.js', 'state', 'state and store', 'kernel', 'kernel')]);
  });

  it('fails the data structures importing the state', async () => {
    expect(await layerErrors('src/structures/btree.ts', "import type { State } from '../state/state.js';")).toEqual([
      message('../state/state.js', 'structures', 'structures', 'state', 'state and store'),
    ]);
  });

  it('fails an engine importing the other engine, and an analysis another analysis', async () => {
    expect(await layerErrors('src/replay/record.ts', "export * from '../timetravel/index.js';")).toEqual([
      message('../timetravel/index.js', 'replay', 'engines', 'timetravel', 'engines'),
    ]);
    expect(await layerErrors('src/bisect/scan.ts', "import '../audit/index.js';")).toEqual([
      message('../audit/index.js', 'bisect', 'analyses', 'audit', 'analyses'),
    ]);
  });

  it('fails a front end importing another, or the library API', async () => {
    expect(await layerErrors('src/cli/main.ts', "import { replay } from '../index.js';")).toEqual([
      message('../index.js', 'cli', 'front ends', 'index.ts', 'front ends'),
    ]);
    expect(await layerErrors('src/index.ts', "export { main } from './cli/main.js';")).toEqual([
      message('./cli/main.js', 'index.ts', 'front ends', 'cli', 'front ends'),
    ]);
  });

  it('lets an analysis import an engine, and the kernel a data structure', async () => {
    expect(await layerErrors('src/bisect/scan.ts', "import { replay } from '../replay/replayer.js';")).toEqual([]);
    expect(await layerErrors('src/kernel/pages.ts', "import type { BTree } from '../structures/btree.js';")).toEqual(
      [],
    );
  });
});
