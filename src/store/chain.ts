// SPDX-License-Identifier: GPL-2.0-only
/**
 * The hash chains of a run. Every event stores sha256 over the previous event's hash and its own fields;
 * every op row does the same over the previous op row. Both chains start from the run's genesis hash and
 * end in a head hash stored on the run when it finishes.
 *
 * Hashes are sha256 of the UTF-8 text below, as 64 lowercase hex digits. Integers are decimal and end in
 * "\n"; strings are framed as `field(s) = <UTF-8 byte length> ":" s "\n"`, except the last one (an event's
 * payload, an op's result), which runs to the end of the text; so no two field lists share an encoding:
 *
 *   genesis = sha256("ioptrace-run/1\n" field(trace_sha256) field(variant) field(flags) field(fault_plan))
 *   event   = sha256(prev "\n" seq "\n" op "\n" v "\n" field(type) payload)
 *   op      = sha256(prev "\n" index "\n" line "\n" first_seq "\n" last_seq "\n" digest "\n"
 *                    field(op) (errno === null ? "-\n" : "+" field(errno)) result)
 *
 * A digest is 16 hex digits (checked before hashing), so it needs no frame.
 *
 * The run id and the trace path are left out on purpose: the same trace, variant, flags and fault plan give
 * the same head hash in any database (architecture decision 6). The flags and fault plan are hashed as the
 * JSON text stored on the run, so editing them breaks the chain.
 */

import { hash } from 'node:crypto';
import type { OpRow } from './types.js';

/** 64 hex digits. */
export const HASH_HEX = /^[0-9a-f]{64}$/;
/** A state digest: 16 hex digits (src/lib/digest.ts). */
export const DIGEST_HEX = /^[0-9a-f]{16}$/;

// crypto.hash with hex output: about twice as fast as createHash().update().digest() per event.
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

function field(s: string): string {
  return `${Buffer.byteLength(s)}:${s}\n`;
}

export function genesisHash(traceSha256: string, variant: string, flagsJson: string, faultPlanJson: string): string {
  return sha256Hex(`ioptrace-run/1\n${field(traceSha256)}${field(variant)}${field(flagsJson)}${field(faultPlanJson)}`);
}

// Event types, op names and errnos are few: frame each once. Leaving the last field (payload, result)
// unframed saves measuring it. Together about a fifth of the cost of hashing an event.
const framedCache = new Map<string, string>();
function framed(s: string): string {
  let f = framedCache.get(s);
  if (f === undefined) {
    f = field(s);
    if (framedCache.size < 4096) framedCache.set(s, f);
  }
  return f;
}

export function eventHash(prev: string, seq: number, op: number, v: number, type: string, payload: string): string {
  return sha256Hex(`${prev}\n${seq}\n${op}\n${v}\n${framed(type)}${payload}`);
}

/** The op chain link of `o`; `o.digest` must match DIGEST_HEX. */
export function opHash(prev: string, o: OpRow): string {
  const errno = o.errno === null ? '-\n' : `+${framed(o.errno)}`;
  return sha256Hex(
    `${prev}\n${o.index}\n${o.line}\n${o.firstSeq}\n${o.lastSeq}\n${o.digest}\n${framed(o.op)}${errno}${o.result}`,
  );
}
