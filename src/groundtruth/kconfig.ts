// SPDX-License-Identifier: GPL-2.0-only
/**
 * Our kernel config fragment, read and checked: after merging it over tinyconfig and resolving with
 * olddefconfig, every option it sets must hold in the final .config (Kconfig silently drops an option
 * whose dependencies are unmet, which would give a kernel without, say, the mock iommu driver).
 */
import { createHash } from 'node:crypto';

/** Option name (without CONFIG_) -> value: 'y', 'm', 'n', a number or a quoted string. */
export type KconfigValues = Map<string, string>;

const SET = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/;
const UNSET = /^# CONFIG_([A-Za-z0-9_]+) is not set$/;

export function parseKconfig(text: string): KconfigValues {
  const values: KconfigValues = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const set = SET.exec(line);
    if (set?.[1] !== undefined && set[2] !== undefined) {
      values.set(set[1], set[2]);
      continue;
    }
    const unset = UNSET.exec(line);
    if (unset?.[1] !== undefined) values.set(unset[1], 'n');
  }
  return values;
}

export interface KconfigMismatch {
  option: string;
  wanted: string;
  got: string;
}

/** The fragment's options that the final config does not hold as asked. */
export function kconfigMismatches(fragment: KconfigValues, final: KconfigValues): KconfigMismatch[] {
  const out: KconfigMismatch[] = [];
  for (const [option, wanted] of fragment) {
    const got = final.get(option) ?? 'n';
    if (got !== wanted) out.push({ option: `CONFIG_${option}`, wanted, got });
  }
  return out;
}

/** The cache key of a kernel build: the source package's exact version and our fragment's bytes. */
export function buildKey(packageVersion: string, fragmentText: string): string {
  return createHash('sha256').update(`${packageVersion}\n${fragmentText}`).digest('hex').slice(0, 16);
}
