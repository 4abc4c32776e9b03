// SPDX-License-Identifier: GPL-2.0-only
// Copying runs between stores, on every backend (source and target of one backend).
import { onEveryBackend } from './backends.js';
import { copyContract } from './copy.contract.js';

onEveryBackend(copyContract);
