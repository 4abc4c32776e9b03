// SPDX-License-Identifier: GPL-2.0-only
/**
 * What closing the iommufd file does at the end of a trace (iommufd_fops_release destroys every object):
 * accesses first (the selftest driver unpins its items), then every IOAS is unmapped, then every domain
 * detached and the selftest's own reserved ranges dropped. What is left after that is a leak, found by checkTeardown.
 */
import type { Sim } from '../machine/sim.js';
import { KTHREAD } from '../machine/sim.js';
import { accessDestroy } from '../kernel/selftest-access.js';
import { domainDetach, ioasUnmap } from '../kernel/ioas.js';
import { ioptRemoveReservedIova } from '../kernel/io-pagetable.js';
import { taskOf } from './dispatch.js';

export function closeEverything(sim: Sim): void {
  const state = sim.state;
  const ownerOf = (ioas: string) => taskOf(state, state.ctxs[state.ioases[ioas]?.ctx ?? '']?.pid ?? 'kthread');
  for (const access of Object.keys(state.accesses).sort()) {
    const ioas = state.accesses[access]?.ioas;
    sim.current = ioas ? ownerOf(ioas) : KTHREAD;
    accessDestroy(sim, access);
  }
  for (const ioas of Object.keys(state.ioases).sort()) {
    sim.current = ownerOf(ioas);
    if (state.ioases[ioas]?.areas.count) ioasUnmap(sim, ioas, { all: true });
    for (const domain of [...(state.ioases[ioas]?.domains ?? [])].reverse()) domainDetach(sim, domain);
    // iopt_destroy_table of a test build drops the ranges ADD_RESERVED made (no owner); no other op
    // makes such ranges, so traces without add_reserved tear down as before.
    if (sim.testBuild) ioptRemoveReservedIova(sim, ioas, null);
  }
}
