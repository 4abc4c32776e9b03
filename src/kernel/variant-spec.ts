// SPDX-License-Identifier: GPL-2.0-only
/**
 * The one spelling of a variant, everywhere (command lines, run listings, reports): a variant name, then
 * fix flags to add (`+FLAG`) or take away (`-FLAG`), e.g. `v3`, `v3+mmget-fail-no-kfree`,
 * `upstream-carry-end-one`, `merged+carry-store-order`. `--fix F` and `--without F` are the same as `+F`
 * and `-F` after the name.
 *
 * Flag names contain hyphens, so the text after the variant is read by matching the longest known flag
 * name after each `+` or `-`: with the known names this is unambiguous.
 *
 * variantLabel writes a flag set back in this syntax, relative to a variant name, flags in upstream order:
 * parseVariantSpec(variantLabel(v, fixes)).fixes equals fixes.
 */
import { BadInputError } from '../lib/errors.js';
import { ALL_FLAG_NAMES, RELEASES, STABLE_SERIES, VARIANTS, resolveVariant } from './variants.js';
import type { VariantSpec } from './variants.js';

export interface NamedVariant extends VariantSpec {
  /** The spec as the user wrote it (the label of the run). */
  label: string;
}

/** The variant a command uses when none is given. */
export const DEFAULT_VARIANT = 'upstream';

const BY_LENGTH = [...ALL_FLAG_NAMES].sort((x, y) => y.length - x.length);
const NAMES_BY_LENGTH = Object.keys(VARIANTS).sort((x, y) => y.length - x.length);

/** The variant name a spec or a stored label starts with (`v3+x` -> `v3`); undefined when none. */
export function variantBase(spec: string): string | undefined {
  return NAMES_BY_LENGTH.find((name) => spec === name || spec.startsWith(`${name}+`) || spec.startsWith(`${name}-`));
}

/** Parse `NAME(+FLAG|-FLAG)*`; a BadInputError names what is wrong. */
export function parseVariantSpec(text: string): NamedVariant {
  const spec = text.trim();
  const base = variantBase(spec);
  if (base === undefined) {
    throw new BadInputError(
      `variant "${text}" must start with one of v3, merged, upstream, a release ${RELEASES[0]} ... ${RELEASES[RELEASES.length - 1]} or a stable series ${STABLE_SERIES.join(', ')} (then +FLAG or -FLAG to add or remove fixes)`,
      { field: 'variant' },
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
      throw new BadInputError(
        `variant "${text}": "${rest}" is not +FLAG or -FLAG with a known flag (ioptrace variants lists them)`,
        { field: 'variant' },
      );
    }
    (sign === '+' ? add : remove).push(flag);
    rest = body.slice(flag.length);
  }
  const resolved = resolveVariant(base, add, remove);
  return { ...resolved, label: spec };
}

/**
 * A flag set in the one syntax, relative to the variant `name` (a bare name or a label that starts with
 * one): `v3+mmget-fail-no-kfree`. Additions then removals, each in upstream order. A name that is no
 * variant is returned as it is.
 */
export function variantLabel(name: string, fixes: readonly string[]): string {
  const base = variantBase(name);
  const flags = base === undefined ? undefined : VARIANTS[base];
  if (base === undefined || flags === undefined) return name;
  const added = ALL_FLAG_NAMES.filter((f) => fixes.includes(f) && !flags.includes(f)).map((f) => `+${f}`);
  const removed = ALL_FLAG_NAMES.filter((f) => flags.includes(f) && !fixes.includes(f)).map((f) => `-${f}`);
  return `${base}${added.join('')}${removed.join('')}`;
}

/**
 * A command line's `--variant SPEC --fix F... --without F...`: the spec (default DEFAULT_VARIANT), with
 * the flags of --fix added and those of --without taken away. The label is the canonical spelling.
 */
export function variantFromOptions(
  spec: string | undefined,
  fix: readonly string[] = [],
  without: readonly string[] = [],
): NamedVariant {
  const named = parseVariantSpec(spec ?? DEFAULT_VARIANT);
  const unknown = [...fix, ...without].find((f) => !ALL_FLAG_NAMES.includes(f));
  if (unknown !== undefined)
    throw new BadInputError(
      `unknown fix flag "${unknown}" (ioptrace variants lists them; known: ${ALL_FLAG_NAMES.join(', ')})`,
      { field: 'fix' },
    );
  const set = new Set(named.fixes);
  for (const f of fix) set.add(f);
  for (const f of without) set.delete(f);
  const fixes = ALL_FLAG_NAMES.filter((f) => set.has(f));
  const base = variantBase(named.label) ?? named.variant;
  return { variant: base, fixes, label: variantLabel(base, fixes) };
}
