// SPDX-License-Identifier: GPL-2.0-only
// The fuzz farm's failure queries, on every backend.
import { onEveryBackend } from './backends.js';
import { failuresContract } from './failures.contract.js';

onEveryBackend(failuresContract);
