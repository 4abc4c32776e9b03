// SPDX-License-Identifier: GPL-2.0-only
/** The command table, in the order `ioptrace --help` lists them. */
import type { Command } from '../command.js';
import { demoCommand } from './demo.js';
import { replayCommand } from './replay.js';
import { runsCommand } from './runs.js';
import { logCommand } from './log.js';
import { atCommand } from './at.js';
import { diffCommand } from './diff.js';
import { whyCommand } from './why.js';
import { stepCommand } from './step.js';
import { watchCommand } from './watch.js';
import { verifyCommand } from './verify.js';
import { failnthCommand } from './failnth.js';
import { variantsCommand } from './variants.js';
import { fuzzCommand } from './fuzz.js';
import { shrinkCommand } from './shrink.js';
import { bisectCommand } from './bisect.js';
import { bisectFixCommand } from './bisect-fix.js';
import { observedCommand } from './observed.js';
import { auditCommand } from './audit.js';
import { kernelCommand } from './kernel.js';
import { runCommand } from './run.js';
import { recordCommand } from './record.js';
import { exportCCommand } from './export-c.js';
import { serveCommand } from './serve.js';
import { exportCommand, importCommand } from './move.js';

export const COMMANDS: readonly Command[] = [
  demoCommand,
  replayCommand,
  runCommand,
  recordCommand,
  runsCommand,
  logCommand,
  atCommand,
  diffCommand,
  whyCommand,
  stepCommand,
  watchCommand,
  verifyCommand,
  exportCommand,
  importCommand,
  failnthCommand,
  variantsCommand,
  fuzzCommand,
  shrinkCommand,
  bisectCommand,
  bisectFixCommand,
  observedCommand,
  auditCommand,
  exportCCommand,
  kernelCommand,
  serveCommand,
];
