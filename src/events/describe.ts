// SPDX-License-Identifier: GPL-2.0-only
/**
 * One readable line per event: its type, then its fields, addresses, PFNs and byte sizes in hex, counts in
 * decimal, a kernel thread's caller as `kthread`. The one event formatter of user output: `log` prints
 * `field=value`, bisect's side-by-side rows `field value`.
 */
import type { Event } from './events.js';
import { count, hex } from '../lib/format.js';

const HEX_FIELDS = new Set([
  'iova',
  'lastIova',
  'paddr',
  'size',
  'unmapped',
  'uptr',
  'pfn',
  'vpn',
  'oldPfn',
  'newPfn',
  'alignment',
  'start',
  'last',
]);

/** Fields holding [pfn, count] pairs: the PFN in hex, the count decimal. */
const RUN_FIELDS = new Set(['runs', 'pfns']);

function show(key: string, value: unknown): string {
  if (typeof value === 'bigint') return HEX_FIELDS.has(key) ? hex(value) : count(value);
  if (typeof value === 'number' && HEX_FIELDS.has(key) && key !== 'start' && key !== 'last') return hex(value);
  if (Array.isArray(value)) {
    if (RUN_FIELDS.has(key)) return `[${value.map((v) => show('run', v)).join(',')}]`;
    if (key === 'run') return `[${value.map((v, i) => (i === 0 ? show('pfn', v) : show('count', v))).join(',')}]`;
    return `[${value.map((v) => show(key === 'removed' ? 'pfn' : key, v)).join(',')}]`;
  }
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}:${show(k, v)}`)
      .join(',')}}`;
  }
  return String(value);
}

/** One event's field value as text (`0x40000`, `[[0x40000,2]]`, `kthread`). */
export function eventFieldText(key: string, value: unknown): string {
  return key === 'caller' && value === null ? 'kthread' : show(key, value);
}

export function describeEvent(e: Event, separator: '=' | ' ' = '='): string {
  const { type, v: _v, ...fields } = e;
  const parts = Object.entries(fields)
    .filter(
      ([k, v]: [string, unknown]) =>
        !(k === 'objects' && typeof v === 'object' && v !== null && Object.keys(v).length === 0),
    )
    .map(([k, v]) => `${k}${separator}${eventFieldText(k, v)}`);
  return `${type} ${parts.join(' ')}`;
}
