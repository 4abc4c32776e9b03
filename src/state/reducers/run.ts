// SPDX-License-Identifier: GPL-2.0-only
/** Reducers for the run itself: configuration, operations, fault plans and findings. */
import type { EventOf } from '../../events/events.js';
import { encodeJson } from '../../lib/codec.js';
import { entrySet, recordAdd, recordSet } from '../records.js';
import type { State } from '../state.js';

export function runConfigured(s: State, e: EventOf<'RunConfigured'>): void {
  const c = s.config;
  recordSet(s, 'state', 'config', c, 'pageSize', e.pageSize);
  recordSet(s, 'state', 'config', c, 'testBuild', e.testBuild);
  recordSet(s, 'state', 'config', c, 'tempMemoryLimit', e.tempMemoryLimit);
  recordSet(s, 'state', 'config', c, 'gupZeroOnOverflow', e.gupZeroOnOverflow);
  if (e.gupUnshareReadPins === true && c.gupUnshareReadPins === undefined) {
    // A field only runs that turn it on have: added with its digest part.
    recordAdd(s, 'state', 'config', { gupUnshareReadPins: true });
    c.gupUnshareReadPins = true;
  }
  s.run = { variant: e.variant, fixes: [...e.fixes] };
}

export function tempMemoryLimitSet(s: State, e: EventOf<'TempMemoryLimitSet'>): void {
  recordSet(s, 'state', 'config', s.config, 'tempMemoryLimit', e.bytes);
}

export function opStarted(_s: State, _e: EventOf<'OpStarted'>): void {}

/** The op's task is blocked for good; what it still holds stays as the last effect left it. */
export function opHung(_s: State, _e: EventOf<'OpHung'>): void {}

export function opFinished(s: State, _e: EventOf<'OpFinished'>): void {
  s.opsDone += 1;
}

function setFault(s: State, fault: State['fault']): void {
  const faults: Record<string, string> = s.fault ? { armed: encodeJson(s.fault) } : {};
  entrySet(s, 'fault', faults, 'armed', fault ? encodeJson(fault) : undefined);
  s.fault = fault;
}

export function faultArmed(s: State, e: EventOf<'FaultArmed'>): void {
  setFault(s, { nth: e.nth, site: e.site });
}

export function faultDisarmed(s: State, _e: EventOf<'FaultDisarmed'>): void {
  setFault(s, null);
}

export function faultInjected(_s: State, _e: EventOf<'FaultInjected'>): void {}

export function warned(s: State, _e: EventOf<'Warned'>): void {
  recordSet(s, 'state', 'counts', s.counts, 'warns', s.counts.warns + 1);
}

export function violationDetected(s: State, _e: EventOf<'ViolationDetected'>): void {
  recordSet(s, 'state', 'counts', s.counts, 'violations', s.counts.violations + 1);
}
