// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace export-c TRACE [-o FILE]`: the trace as a standalone C program for a real kernel with
 * CONFIG_IOMMUFD_TEST (src/groundtruth/export-c.ts). The program goes to FILE or stdout; the ops that
 * cannot be exported are listed on stderr (and in --json), one line each.
 */
import { writeFileSync } from 'node:fs';
import { exportC } from '../../groundtruth/export-c.js';
import { UsageError } from '../errors.js';
import type { Command, CommandOutput } from '../command.js';
import { loadTrace } from './replay.js';

export const exportCCommand: Command = {
  name: 'export-c',
  summary: 'write a trace as a standalone C program that performs its ops on a real kernel (CONFIG_IOMMUFD_TEST)',
  usage: 'ioptrace export-c TRACE [-o FILE] [--json]',
  help: [
    'The program (cc -static FILE) runs each trace process as a forked child, mock domains and accesses',
    'through IOMMU_TEST_CMD, and prints one JSON line per op (errno, iova/unmapped as "value", data, check',
    'answers) and every WARNING/BUG line of /dev/kmsg with the op it followed. Ops user space cannot perform',
    '(an explicit physical layout, a kernel-thread caller, a named fault site, a generic domain) are not',
    'performed: the program prints them as not_exportable, and so does this command.',
  ],
  options: { output: { type: 'string', short: 'o' } },
  async run(positionals, values, env): Promise<CommandOutput> {
    const [path, ...extra] = positionals;
    if (path === undefined || extra.length) throw new UsageError(`usage: ${this.usage}`);
    const { trace } = await loadTrace(path);
    const program = exportC(trace, path);
    const out = typeof values['output'] === 'string' ? values['output'] : undefined;
    const notes = program.notExportable.map(
      (n) => `op ${n.op} (line ${n.line}, ${n.name}): not exportable: ${n.reason}`,
    );
    if (out !== undefined) writeFileSync(out, program.source);
    const summary = `${path}: ${program.ops} ops, ${program.notExportable.length} not exportable${out === undefined ? '' : `; C program written to ${out}`}`;
    if (out === undefined && !env.json) {
      for (const n of notes) env.stderr.write(`${n}\n`);
      return { exitCode: 0, json: null, text: [program.source] };
    }
    return {
      exitCode: 0,
      json: { trace: path, ops: program.ops, output: out ?? null, notExportable: program.notExportable },
      text: [...notes, summary],
    };
  },
};
