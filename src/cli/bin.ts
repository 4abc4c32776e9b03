#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
/** The `ioptrace` executable. */
import { main } from './main.js';

// A reader that stops early (`ioptrace log 1 | head`) closes the pipe: what is left unwritten has no one
// to read it, which is not an error of ioptrace (no stack trace; the shell's usual quiet end).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
