// SPDX-License-Identifier: GPL-2.0-only
// The store contract against every backend.
import { onEveryBackend } from './backends.js';
import { storeContract } from './store.contract.js';

onEveryBackend(storeContract);
