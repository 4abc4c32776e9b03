// SPDX-License-Identifier: GPL-2.0-only
/** The command table, in the order `ioptrace --help` lists them. */
import type { Command } from '../command.js';
import { replayCommand } from './replay.js';
import { runsCommand } from './runs.js';
import { logCommand } from './log.js';
import { verifyCommand } from './verify.js';
import { failnthCommand } from './failnth.js';
import { variantsCommand } from './variants.js';

export const COMMANDS: readonly Command[] = [replayCommand, runsCommand, logCommand, verifyCommand, failnthCommand, variantsCommand];
