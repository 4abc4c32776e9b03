// SPDX-License-Identifier: GPL-2.0-only
/** Shared argument checks of the commands that read a run (the check itself is the answers' own). */
export { requireRun } from '../../timetravel/index.js';
