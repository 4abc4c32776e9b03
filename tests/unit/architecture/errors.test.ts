// SPDX-License-Identifier: GPL-2.0-only
/**
 * Errors as data: library code throws typed errors (lib/errors, replay/errors, store/errors), and only the
 * CLI knows about command-line usage. So no file of src/ outside src/cli/ names UsageError, and the CLI's
 * classifier tells errors apart by class, never by their `name` string.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../../..');
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}

describe('error classes by layer', () => {
  const files = sourceFiles(SRC);

  it('walks the whole of src/', () => {
    expect(files).toContain('src/cli/errors.ts');
    expect(files).toContain('src/lib/errors.ts');
    expect(files.length).toBeGreaterThan(100);
  });

  it('names UsageError only under src/cli/', () => {
    const outside = files.filter((f) => !f.startsWith('src/cli/'));
    expect(outside.filter((f) => readFileSync(join(ROOT, f), 'utf8').includes('UsageError'))).toEqual([]);
  });

  it('classifies errors in the CLI by class, not by name', () => {
    const main = readFileSync(join(SRC, 'cli/main.ts'), 'utf8');
    expect(main.match(/\.name\s*===\s*'[A-Za-z]*Error'/g)).toBeNull();
    for (const cls of ['NotFoundError', 'BadRangeError', 'BadInputError', 'StoreError', 'ToolError']) {
      expect(main).toContain(`err instanceof ${cls})`);
    }
  });
});
