// SPDX-License-Identifier: GPL-2.0-only
/** Files shipped with ioptrace (replays/), found from the running code whether it runs from src/ or dist/. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of ioptrace's own package.json. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'ioptrace')
      return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the ioptrace package root');
    dir = up;
  }
}
