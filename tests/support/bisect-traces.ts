// SPDX-License-Identifier: GPL-2.0-only
/** Shared by the bisect tests: reading traces and naming variants. */
import { readFileSync } from 'node:fs';
import { parseTraceText } from '../../src/replay/parse.js';
import type { ParsedTrace } from '../../src/replay/parse.js';
import { parseVariantSpec } from '../../src/kernel/variant-spec.js';
import type { VariantSpec } from '../../src/kernel/variants.js';

export const BAD_FREE = 'replays/bad-free.jsonl';
export const ACCESS_DOMAIN_DESTORY = 'replays/selftest/iommufd_ioas.access_domain_destory.jsonl';
export const FIXTURES = 'tests/fixtures/bisect';

export function trace(path: string): ParsedTrace {
  return parseTraceText(readFileSync(path, 'utf8'), path);
}

/** A variant spec as the commands take it: `v3`, `v3+mmget-fail-no-kfree`, `upstream-carry-end-one`. */
export function variant(spec: string, add: string[] = []): VariantSpec {
  const { variant: name, fixes } = parseVariantSpec([spec, ...add].join('+'));
  return { variant: name, fixes };
}
