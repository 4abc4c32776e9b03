// SPDX-License-Identifier: GPL-2.0-only
/** renderAuditHtml on a hand-made report: the chart's geometry, the markers, escaping, self-containment. */
import { describe, expect, it } from 'vitest';
import { CHART, chartSeries, escapeHtml, opX, renderAuditHtml } from '../../../src/audit/html.js';
import { RULE_DESCRIPTIONS, RULE_NAMES, type RuleResult } from '../../../src/audit/reconcile.js';
import { auditCsv, type AuditReport } from '../../../src/audit/report.js';

function rule(name: (typeof RULE_NAMES)[number], op: number | null, detail: string | null = null): RuleResult {
  return {
    rule: name,
    ok: op === null,
    description: RULE_DESCRIPTIONS[name],
    op,
    line: op === null ? null : op + 10,
    opName: op === null ? null : 'access_unpin',
    detail,
    accounts: [],
    events: [],
    moreEvents: 0,
    skipped: null,
  };
}

/** Ops 0..5; npinned 8 at op 2, 5 at op 3 while pins stay 8; user.locked_vm 8 at op 2. */
function report(): AuditReport {
  return {
    run: 7,
    tracePath: 'x<y>.jsonl',
    variant: 'v3',
    flags: [],
    status: 'complete',
    filter: {},
    ok: false,
    opCount: 6,
    rules: [
      rule('ledger-equals-state', null),
      rule('npinned-equals-pins', 3, 'npinned 5 < 8 pins & "more"'),
      rule('charged-equals-pinned', 3, 'last_npinned 8'),
      rule('counters-move-together', null),
      rule('zero-after-teardown', 5, 'left: pins:- = 8'),
    ],
    final: [{ counter: 'pins', owner: null, op: 2, value: 8 }],
    ledger: [
      {
        seq: 11,
        op: 2,
        line: 12,
        type: 'PagesPinned',
        counter: 'pins',
        owner: null,
        pages: null,
        delta: 8,
        value: 8,
        pagesValue: 8,
        fn: 'pin_user_pages_fast',
        pfn: 0x40000,
        mm: 1,
      },
      {
        seq: 12,
        op: 2,
        line: 12,
        type: 'NpinnedChanged',
        counter: 'npinned',
        owner: 2,
        pages: 2,
        delta: 8,
        value: 8,
        pagesValue: 8,
        fn: 'pfn_reader_user_pin',
        pfn: null,
        mm: null,
      },
    ],
    ops: [0, 1, 2, 3, 4, 5].map((index) => ({
      index,
      line: index === 0 ? 0 : index + 10,
      op: index === 5 ? 'teardown' : 'x',
    })),
    series: [
      { op: 2, counter: 'npinned', value: 8 },
      { op: 2, counter: 'pins', value: 8 },
      { op: 2, counter: 'user.locked_vm', value: 8 },
      { op: 3, counter: 'npinned', value: 5 },
    ],
    findings: { violations: 0, warns: 0, kinds: [] },
  };
}

/** The polylines of the chart: counter -> list of [x, y]. */
function polylines(html: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const m of html.matchAll(/<polyline class="series" data-counter="([^"]+)" points="([^"]*)"/g)) {
    out.set(
      m[1] ?? '',
      (m[2] ?? '').split(' ').map((p) => p.split(',').map(Number) as [number, number]),
    );
  }
  return out;
}

describe('opX', () => {
  it('spreads ops evenly over the plot, first at its left edge and last at its right', () => {
    expect(opX(0, 0, 5)).toBe(CHART.left);
    expect(opX(5, 0, 5)).toBe(CHART.width - CHART.right);
    expect(opX(3, 0, 5)).toBe(670);
    expect(opX(0, 0, 0)).toBe(CHART.left);
  });
});

describe('chartSeries', () => {
  it('gives every counter one point per op, carrying each value forward from its last change', () => {
    const s = chartSeries(report());
    expect(s.map((x) => x.counter)).toEqual([
      'user.locked_vm',
      'mm.locked_vm',
      'mm.pinned_vm',
      'npinned',
      'last_npinned',
      'pins',
    ]);
    expect(s.find((x) => x.counter === 'npinned')?.points.map((p) => p.value)).toEqual([0, 0, 8, 5, 5, 5]);
    expect(s.find((x) => x.counter === 'pins')?.points.map((p) => p.value)).toEqual([0, 0, 8, 8, 8, 8]);
    expect(s.find((x) => x.counter === 'mm.locked_vm')?.points.map((p) => p.value)).toEqual([0, 0, 0, 0, 0, 0]);
  });
});

describe('renderAuditHtml', () => {
  const html = renderAuditHtml(report());

  it('draws one polyline per counter with one point per op, at the op x positions', () => {
    const lines = polylines(html);
    expect([...lines.keys()].sort()).toEqual([
      'last_npinned',
      'mm.locked_vm',
      'mm.pinned_vm',
      'npinned',
      'pins',
      'user.locked_vm',
    ]);
    for (const points of lines.values()) {
      expect(points.map(([x]) => x)).toEqual([0, 1, 2, 3, 4, 5].map((op) => opX(op, 0, 5)));
    }
    // npinned drops from 8 to 5 at op 3: lower on the chart than pins there, equal at op 2.
    const npinned = lines.get('npinned') ?? [];
    const pins = lines.get('pins') ?? [];
    expect(npinned[2]?.[1]).toBe(pins[2]?.[1]);
    expect((npinned[3]?.[1] ?? 0) > (pins[3]?.[1] ?? 0)).toBe(true);
  });

  it('marks each broken rule at the x of the op where it broke', () => {
    const markers = [
      ...html.matchAll(
        /<g class="violation" data-rule="([^"]+)" data-op="(\d+)" data-x="([\d.]+)">.*?<line x1="([\d.]+)" x2="([\d.]+)"/g,
      ),
    ].map((m) => [m[1], Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])]);
    expect(markers).toEqual([
      ['npinned-equals-pins', 3, 670, 670, 670],
      ['charged-equals-pinned', 3, 670, 670, 670],
      ['zero-after-teardown', 5, 1070, 1070, 1070],
    ]);
  });

  it('loads nothing from elsewhere: no script, no external URL, styles inline', () => {
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(src|href)=/i);
    expect([...html.matchAll(/https?:\/\/[^"\s]+/g)].map((m) => m[0])).toEqual(['http://www.w3.org/2000/svg']);
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  });

  it('escapes text from the run and puts the ledger in a table below the chart', () => {
    expect(html).toContain('x&lt;y&gt;.jsonl');
    expect(html).toContain('npinned 5 &lt; 8 pins &amp; &quot;more&quot;');
    expect(html.indexOf('<table class="ledger">')).toBeGreaterThan(html.indexOf('<svg id="chart"'));
    expect(html).toContain(
      '<tr><td class="num">11</td><td class="num">2</td><td class="num">12</td><td>pins</td><td class="num">-</td><td class="num">-</td><td class="num">+8</td><td class="num">8</td><td>pin_user_pages_fast pfn 0x40000</td></tr>',
    );
  });
});

describe('escapeHtml and auditCsv', () => {
  it('escapes the five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('writes one CSV line per ledger line with empty cells for nulls', () => {
    expect(auditCsv(report())).toEqual([
      'seq,op,line,type,counter,owner,pages,delta,value,fn,pfn,mm',
      '11,2,12,PagesPinned,pins,,,8,8,pin_user_pages_fast,262144,1',
      '12,2,12,NpinnedChanged,npinned,2,2,8,8,pfn_reader_user_pin,,',
    ]);
  });
});
