#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
/** The `ioptrace` executable. */
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
