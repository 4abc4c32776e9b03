// SPDX-License-Identifier: GPL-2.0-only
/** One readable line per event: its type, then its fields, addresses and PFNs in hex. */
import type { Event } from '../events/events.js';

const HEX_FIELDS = new Set([
  'iova',
  'lastIova',
  'paddr',
  'size',
  'unmapped',
  'uptr',
  'pfn',
  'oldPfn',
  'newPfn',
  'alignment',
  'start',
  'last',
]);

function show(key: string, value: unknown): string {
  if (typeof value === 'bigint') return HEX_FIELDS.has(key) ? `0x${value.toString(16)}` : value.toString();
  if (typeof value === 'number' && HEX_FIELDS.has(key) && key !== 'start' && key !== 'last')
    return `0x${value.toString(16)}`;
  if (Array.isArray(value))
    return `[${value.map((v) => show(key === 'runs' || key === 'removed' ? 'pfn' : key, v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}:${show(k, v)}`)
      .join(',')}}`;
  }
  return String(value);
}

export function describeEvent(e: Event): string {
  const { type, v: _v, ...fields } = e;
  const parts = Object.entries(fields)
    .filter(
      ([k, v]: [string, unknown]) =>
        !(k === 'objects' && typeof v === 'object' && v !== null && Object.keys(v).length === 0),
    )
    .map(([k, v]) => `${k}=${show(k, v)}`);
  return `${type} ${parts.join(' ')}`;
}
