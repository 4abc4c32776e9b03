// SPDX-License-Identifier: GPL-2.0-only
// The browser view end to end: Debian's chromium driven by playwright-core (no browser download) against
// `ioptrace serve` in a child process on a loopback port, over a store holding the shipped BAD_FREE run and
// a held pin-leak run. Every view is screenshotted into test-artifacts/ (git-ignored); the page's own time
// to draw each state is written to test-artifacts/page-timing.json (read, never asserted: no timing in tests).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childLines } from '../support/child-lines.js';
import { BUILT_CLI } from '../support/built-cli.js';
import { tempDir } from '../support/store-rows.js';
import { ROOT, buildWebStore } from '../support/web-store.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts');
const tmp = tempDir();
const db = join(tmp.dir, 'web.db');
let child: ChildProcess | null = null;
let browser: Browser | null = null;
let page: Page;
let url = '';
const renderMs: Record<string, number> = {};

beforeAll(async () => {
  await buildWebStore(db);
  mkdirSync(ARTIFACTS, { recursive: true });
  const serve = spawn(process.execPath, [BUILT_CLI, 'serve', '--db', db, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = serve;
  const lines = await childLines(serve, (l) => l.some((x) => x.startsWith('listening on ')));
  url = (lines.find((x) => x.startsWith('listening on ')) ?? '').slice('listening on '.length);
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
});

afterAll(async () => {
  await browser?.close();
  if (child?.pid !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  writeFileSync(join(ARTIFACTS, 'page-timing.json'), `${JSON.stringify(renderMs, null, 2)}\n`);
  tmp.remove();
});

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Waits until the page has drawn the state after `seq`, and notes how long the page took. */
async function drawn(seq: number, label: string): Promise<void> {
  await page.waitForSelector(`body[data-ready="${seq}"]`);
  renderMs[label] = Number(await page.getAttribute('body', 'data-render-ms'));
}

async function texts(selector: string): Promise<string[]> {
  return page.locator(selector).allInnerTexts();
}

describe('ioptrace serve in chromium', () => {
  it('has the browser it drives', () => {
    expect(existsSync(CHROMIUM)).toBe(true);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
  });

  it('lists the runs with their variants, status and findings by kind', async () => {
    await page.goto(url);
    await page.waitForSelector('#runs tbody tr');
    expect(await texts('#runs tbody tr')).toEqual([
      'run 1\treplays/bad-free.jsonl\tv3\tcomplete\tviolations 3 (bad_free 1, mmput_underflow 1, double_free 1), WARNs 0, unmet 0\t12 ops, 60 events',
      'run 2\ttests/fixtures/bisect/held-carry.jsonl\tv3\tcomplete\tviolations 8 (batch_out_of_bounds 1, invariant 2, pin_leak 2, accounting_mismatch 3), WARNs 2, unmet 0\t16 ops, 1156 events',
      'run 3\ttests/fixtures/bisect/held-carry.jsonl\tv3+carry-end-one\tcomplete\tviolations 16 (batch_out_of_bounds 2, double_unpin 2, invariant 3, pin_leak 3, accounting_mismatch 6), WARNs 29, unmet 0\t16 ops, 1190 events',
    ]);
    await shot('runs');
  });

  it('opens the BAD_FREE run, jumps to the violation and shows the allocation it frees', async () => {
    await page.click('tr[data-run="1"] a.run-link');
    await drawn(60, 'run 1 end');
    expect(await texts('#findings li')).toEqual([
      'bad_free event 39 (op 8): bad_free in pfn_reader_user_pin: iommufd frees allocation 4 (out_pages) owned by caller',
      'mmput_underflow event 41 (op 8): mmput_underflow in pfn_reader_user_destroy: mmput of mm 1 with mm_users 0',
      'double_free event 44 (op 8): double_free in iommufd_test_access_pages: kfree of freed allocation 4',
    ]);
    await page.click('a.finding-link[data-kind="bad_free"]');
    await drawn(39, 'run 1 event 39');
    expect(page.url()).toBe(`${url}#/run/1/event/39`);
    expect(await page.innerText('#event')).toBe(
      'event 39: ViolationDetected, kind bad_free, fn pfn_reader_user_pin, detail iommufd frees allocation 4 (out_pages) owned by caller',
    );
    expect(await page.innerText('#position')).toBe('event 39 of 60, after op 7');
    expect(await texts('#heap li')).toEqual([
      '#2: 232 bytes, iommufd, iopt_pages, by iopt_alloc_pages',
      '#3: 176 bytes, iommufd, iopt_area, by iopt_alloc_area_pages',
      '#4: 8 bytes, caller, out_pages, by iommufd_test_access_pages',
      '#5: 56 bytes, iommufd, iopt_pages_access, by iopt_pages_add_access',
    ]);
    expect(await page.innerText('li.op.current summary')).toBe(
      'op 8 line 33 access_pin EFAULT (events 36..45) bad_free mmput_underflow double_free',
    );
    await shot('bad-free');
  });

  it('steps back over op 8 and forward again, highlighting what the step changed', async () => {
    await page.click('#step-back');
    await drawn(35, 'step back to event 35');
    expect(page.url()).toBe(`${url}#/run/1/event/35`);
    expect(await page.innerText('#changes h3')).toBe('Undid op 8 access_pin');
    const undo = await texts('#changes li');
    expect(undo.slice(0, 2)).toEqual(['replace mms.1.mm_users -1 -> 0', 'replace violations (count) 3 -> 0']);
    expect(await texts('.changed')).toEqual([
      'violations 0, warns 0',
      'mm 1: pid 1, mm_users 0, mm_count 1, locked_vm 0, pinned_vm 0',
      'mm 1: locked_vm 0, pinned_vm 0',
    ]);
    await shot('step-back');

    await page.click('#step-forward');
    await drawn(45, 'step forward to event 45');
    expect(page.url()).toBe(`${url}#/run/1/event/45`);
    expect(await page.innerText('#changes h3')).toBe('Applied op 8 access_pin');
    expect((await texts('#changes li')).slice(0, 2)).toEqual([
      'replace mms.1.mm_users 0 -> -1',
      'replace violations (count) 0 -> 3',
    ]);
    expect(await texts('.changed')).toEqual([
      'violations 3, warns 0',
      'mm 1: pid 1, mm_users -1, mm_count 1, locked_vm 0, pinned_vm 0',
      'mm 1: locked_vm 0, pinned_vm 0',
    ]);
    await shot('step-forward');
  });

  it('finds the first event where a watch expression holds', async () => {
    await page.fill('#watch-expr', 'violations > 0');
    await page.click('#watch-go');
    await page.waitForSelector('#watch-out a');
    expect(await page.innerText('#watch-out')).toBe('violations > 0 first holds after event 39 (op 8, trace line 33)');
  });

  it('clicks a PFN of the held pin leak and shows its history', async () => {
    const answer = (await (await fetch(`${url}api/runs/2/why?pfn=0x40002`)).json()) as {
      events: { seq: number; op: number; text: string }[];
    };
    await page.goto(`${url}#/run/2/event/1113`);
    await drawn(1113, 'run 2 event 1113');
    expect(await page.innerText('#event')).toMatch(/^event 1113: ViolationDetected, kind pin_leak, fn invariants, /);
    expect(await texts('#frames li')).toEqual([
      'pfn 0x40000 (2): pins 0, maps 1',
      'pfn 0x40002 (510): pins 1, maps 1',
      'pfn 0x40400 (512): pins 0, maps 1',
    ]);
    await page.click('#frames a.pfn[data-pfn="0x40002"]');
    await page.waitForSelector('#why-count');
    expect(await page.innerText('#why-count')).toBe(`${answer.events.length} events touched pfn 0x40002`);
    expect(await texts('#why-events li')).toEqual(answer.events.map((e) => `event ${e.seq} op ${e.op}: ${e.text}`));
    await shot('why-pfn');
  });

  it('shows the audit: chart, ledger and the first broken rule', async () => {
    await page.goto(`${url}#/run/2/audit`);
    await page.waitForSelector('#ledger tbody tr');
    expect(await page.locator('#audit-chart polyline').count()).toBeGreaterThan(0);
    const audit = (await (await fetch(`${url}api/runs/2/audit`)).json()) as {
      ok: boolean;
      rules: { rule: string; ok: boolean; op: number | null; detail: string | null }[];
      ledger: { op: number }[];
    };
    const broken = audit.rules.filter((r) => !r.ok).sort((x, y) => (x.op ?? 0) - (y.op ?? 0));
    const first = broken[0];
    expect(first).toBeDefined();
    expect(await page.innerText('#audit-verdict')).toBe(
      `rules broken: ${audit.rules
        .filter((r) => !r.ok)
        .map((r) => `${r.rule} at op ${String(r.op)}`)
        .join(', ')}`,
    );
    expect(await texts('#rules li.broken.first')).toEqual([
      `BROKEN ${first?.rule} at op ${first?.op}: ${first?.detail}`,
    ]);
    const shown = audit.ledger.filter((l, i) => i < 200 || l.op === first?.op).length;
    expect(await page.locator('#ledger tbody tr').count()).toBe(shown + 1);
    expect(await page.locator('#ledger tbody tr.first-broken').count()).toBe(
      audit.ledger.filter((l) => l.op === first?.op).length,
    );
    await shot('audit');
  });

  it('puts the leaking run and the run with the carry fix side by side at their first divergent op', async () => {
    await page.goto(`${url}#/bisect/2/3`);
    await page.waitForSelector('#bisect-verdict');
    expect(await page.innerText('#bisect-verdict')).toMatch(
      /^first divergent op 10 \(domain_detach, trace line 17\): /,
    );
    expect(await page.locator('#bisect-diff li').count()).toBeGreaterThan(0);
    await shot('bisect');
  });
});
