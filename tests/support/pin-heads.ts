// SPDX-License-Identifier: GPL-2.0-only
// Writes tests/fixtures/heads.json from the code as it is: run on a commit whose output is known good.
// Usage: npx vite-node tests/support/pin-heads.ts
import { writeFileSync } from 'node:fs';
import { HEADS_FIXTURE, PINNED_VARIANTS, SHIPPED_TRACES, computeHeadsOf } from './heads.js';

const heads = {};
for (const path of SHIPPED_TRACES) {
  for (const variant of PINNED_VARIANTS) Object.assign(heads, await computeHeadsOf(path, variant));
}
writeFileSync(HEADS_FIXTURE, `${JSON.stringify(heads, null, 2)}\n`);
process.stdout.write(`${Object.keys(heads).length} runs pinned in ${HEADS_FIXTURE}\n`);
