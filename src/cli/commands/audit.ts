// SPDX-License-Identifier: GPL-2.0-only
/**
 * `ioptrace audit RUN`: the accounting ledger of a run and its reconciliation (exit 1 when a rule breaks);
 * `--csv` prints the ledger as CSV, `--html FILE` writes the report with its chart. `ioptrace audit --all`:
 * every run's final counters and broken rules.
 */
import { writeFile } from 'node:fs/promises';
import { auditAll, auditCsv, auditJson, auditRun, auditText, renderAuditHtml, summaryText } from '../../audit/index.js';
import { reportVerdict } from '../../audit/report.js';
import type { AuditFilter } from '../../audit/index.js';
import { openStore } from '../../store/index.js';
import { UsageError } from '../errors.js';
import type { CommandOutput } from '../command.js';
import { defineCommand, intArg } from '../command.js';
import { flag, int, text } from '../options.js';

const USAGE =
  'ioptrace audit RUN [--user UID] [--pid PID] [--pages ID] [--json | --csv | --html FILE] [--db FILE]\n       ioptrace audit --all [--json] [--db FILE]';

export const auditCommand = defineCommand({
  name: 'audit',
  summary: 'the accounting ledger of a run, reconciled (locked_vm, pinned_vm, npinned, pins)',
  usage: USAGE,
  help: [
    'Every change to user.locked_vm, mm.locked_vm, mm.pinned_vm, npinned, last_npinned and the physical pins,',
    'with its event, op, trace line, delta, balance after and kernel function; then the rules of the books:',
    '  ledger-equals-state, npinned-equals-pins, charged-equals-pinned, counters-move-together,',
    '  zero-after-teardown; each broken one with the first op where it broke and the events that broke it.',
    '--user, --pid and --pages narrow the ledger and the chart (together: lines matching all); the rules',
    'always cover the whole run. Exit 0 when the books balance, 1 when a rule breaks, 2 for bad arguments.',
  ],
  options: { user: int(null), pid: text(), pages: int(null), csv: flag(), html: text(), all: flag() },
  async run(positionals, values, env): Promise<CommandOutput> {
    const { all, csv } = values;
    const html = values.html ?? null;
    if ([env.json, csv, html !== null].filter(Boolean).length > 1)
      throw new UsageError(`audit: --json, --csv and --html exclude each other\nusage: ${USAGE}`);
    if (html === '') throw new UsageError('audit: --html needs a file name');
    const filter: AuditFilter = {
      ...(values.user !== null ? { user: values.user } : {}),
      ...(values.pid !== undefined ? { pid: values.pid } : {}),
      ...(values.pages !== null ? { pages: values.pages } : {}),
    };
    if (all) {
      if (positionals.length > 0 || Object.keys(filter).length > 0 || csv || html !== null) {
        throw new UsageError(`audit --all takes no RUN, filter, --csv or --html\nusage: ${USAGE}`);
      }
    } else if (positionals.length !== 1) {
      throw new UsageError(`usage: ${USAGE}`);
    }

    const store = await openStore(env.db, { readonly: true });
    try {
      if (all) {
        const rows = await auditAll(store);
        return { exitCode: rows.every((r) => r.ok) ? 0 : 1, json: { runs: rows }, text: summaryText(rows) };
      }
      const run = intArg(positionals[0], 'RUN');
      // Only the HTML chart draws every op; the other forms need their count alone.
      const report = await auditRun(store, run, filter, { ops: html !== null });
      const exitCode = report.ok ? 0 : 1;
      if (html !== null) {
        // Rendered before the write, so that a failure to render is never reported as one to write.
        const page = renderAuditHtml(report);
        try {
          await writeFile(html, page, 'utf8');
        } catch (err) {
          throw new UsageError(
            `cannot write ${html}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          );
        }
        const broken = report.rules.filter((r) => !r.ok);
        return {
          exitCode,
          json: auditJson(report),
          text: [
            `wrote ${html}: run ${run}, ${report.ledger.length} ledger lines, ${broken.length ? `${broken.length} rules broken (${broken.map((r) => `${r.rule} at op ${r.op ?? '-'}`).join(', ')})` : reportVerdict(report).text}`,
          ],
        };
      }
      return { exitCode, json: auditJson(report), text: csv ? auditCsv(report) : auditText(report) };
    } finally {
      await store.close();
    }
  },
});
