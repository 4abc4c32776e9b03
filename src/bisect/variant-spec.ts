// SPDX-License-Identifier: GPL-2.0-only
/**
 * Variant specs on the command line of the bisect commands: a variant name, then fix flags to add (`+FLAG`)
 * or take away (`-FLAG`), e.g. `v3+mmget-fail-no-kfree`, `upstream-carry-end-one`, `merged+carry-store-order`.
 *
 * Flag names contain hyphens, so the text after the variant is read by matching the longest known flag
 * name after each `+` or `-`: with the known names this is unambiguous.
 */
import { ALL_FLAG_NAMES, VARIANTS, resolveVariant } from '../kernel/variants.js';
import type { VariantSpec } from '../kernel/variants.js';
import { UsageError } from '../lib/errors.js';

export interface NamedVariant extends VariantSpec {
  /** The spec as the user wrote it (the label of the run). */
  label: string;
}

const BY_LENGTH = [...ALL_FLAG_NAMES].sort((x, y) => y.length - x.length);

/** Parse `NAME(+FLAG|-FLAG)*`; a UsageError names what is wrong. */
export function parseVariantSpec(text: string): NamedVariant {
  const spec = text.trim();
  const base = Object.keys(VARIANTS)
    .sort((x, y) => y.length - x.length)
    .find((name) => spec === name || spec.startsWith(`${name}+`) || spec.startsWith(`${name}-`));
  if (base === undefined) {
    throw new UsageError(
      `variant "${text}" must start with one of ${Object.keys(VARIANTS).join(', ')} (then +FLAG or -FLAG to add or remove fixes)`,
    );
  }
  const add: string[] = [];
  const remove: string[] = [];
  let rest = spec.slice(base.length);
  while (rest.length > 0) {
    const sign = rest[0];
    const body = rest.slice(1);
    const flag = BY_LENGTH.find((f) => body === f || body.startsWith(`${f}+`) || body.startsWith(`${f}-`));
    if ((sign !== '+' && sign !== '-') || flag === undefined) {
      throw new UsageError(
        `variant "${text}": "${rest}" is not +FLAG or -FLAG with a known flag (ioptrace variants lists them)`,
      );
    }
    (sign === '+' ? add : remove).push(flag);
    rest = body.slice(flag.length);
  }
  const resolved = resolveVariant(base, add, remove);
  return { ...resolved, label: spec };
}
