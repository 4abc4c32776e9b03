// SPDX-License-Identifier: GPL-2.0-only
/**
 * The page's script, as text: plain browser JavaScript, kept out of the node TypeScript program (no DOM
 * types there) and served inline by page.ts, so the page loads nothing but the API of its own server.
 * Written without template literals so it can sit in String.raw.
 */
export const CLIENT_JS = String.raw`
'use strict';
// ioptrace serve: the browser view. Plain script, no framework, no network loads but the API of this server.
var app = document.getElementById('app');
var cache = { run: null, runId: null, at: 0, lastStep: null };
var LEDGER_ROWS = 200;

function el(tag, attrs, kids) {
  var node = document.createElement(tag);
  var a = attrs || {};
  Object.keys(a).forEach(function (k) {
    if (k === 'text') node.textContent = a[k];
    else if (k === 'onclick') node.addEventListener('click', a[k]);
    else node.setAttribute(k, a[k]);
  });
  (kids || []).forEach(function (kid) {
    if (kid !== null && kid !== undefined) node.appendChild(typeof kid === 'string' ? document.createTextNode(kid) : kid);
  });
  return node;
}
function api(path) {
  return fetch(path).then(function (res) {
    return res.json().then(function (body) {
      if (!res.ok) throw new Error(body.error ? body.error.message : 'HTTP ' + res.status);
      return body;
    });
  });
}
function showError(where, err) {
  where.appendChild(el('p', { class: 'error', id: 'error', text: String(err.message || err) }));
}
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}
function more(capped, node) {
  if (capped.more > 0) node.appendChild(el('li', { class: 'more', text: '... ' + capped.more + ' more' }));
}
function countsText(c) {
  var parts = [];
  Object.keys(c).forEach(function (k) {
    if (k !== 'violation' && k !== 'warn' && k !== 'unmet' && c[k] > 0) parts.push(k + ' ' + c[k]);
  });
  return 'violations ' + c.violation + (parts.length ? ' (' + parts.join(', ') + ')' : '') + ', WARNs ' + c.warn + ', unmet ' + c.unmet;
}

// ---- the runs list ----
function showRuns() {
  app.textContent = '';
  app.appendChild(el('h1', { text: 'Runs' }));
  api('/api/runs-findings').then(function (runs) {
    var body = el('tbody');
    runs.forEach(function (r) {
      body.appendChild(el('tr', { 'data-run': String(r.id) }, [
        el('td', {}, [el('a', { href: '#/run/' + r.id, class: 'run-link', text: 'run ' + r.id })]),
        el('td', { text: r.tracePath }),
        el('td', { text: r.label }),
        el('td', { text: r.incomplete ? 'incomplete' : r.status }),
        el('td', { class: 'findings', text: countsText(r.findings) }),
        el('td', { text: r.opCount + ' ops, ' + r.eventCount + ' events' }),
      ]));
    });
    app.appendChild(el('table', { id: 'runs' }, [
      el('thead', {}, [el('tr', {}, ['run', 'trace', 'variant', 'status', 'findings', 'size'].map(function (h) { return el('th', { text: h }); }))]),
      body,
    ]));
    var a = el('input', { id: 'bisect-a', size: '4', placeholder: 'run A' });
    var b = el('input', { id: 'bisect-b', size: '4', placeholder: 'run B' });
    app.appendChild(el('p', {}, ['Side by side (bisect): ', a, ' ', b, ' ',
      el('button', { id: 'bisect-go', text: 'compare', onclick: function () { go('#/bisect/' + a.value + '/' + b.value); } })]));
  }).catch(function (e) { showError(app, e); });
}

// ---- one run ----
function loadRun(id) {
  if (cache.runId === id && cache.run) return Promise.resolve(cache.run);
  return api('/api/runs/' + id).then(function (run) { cache.run = run; cache.runId = id; cache.lastStep = null; return run; });
}
function opAfter(run, seq) {
  var k = -1;
  run.ops.forEach(function (o) { if (o.lastSeq <= seq) k = o.index; });
  return k;
}
function opOf(run, seq) {
  for (var i = 0; i < run.ops.length; i++) if (run.ops[i].firstSeq <= seq && seq <= run.ops[i].lastSeq) return run.ops[i];
  return null;
}
function findingBadge(f) {
  return el('span', { class: 'finding ' + f.kind, text: f.kind === 'violation' ? f.what : f.kind === 'warn' ? 'WARN' : 'unmet ' + f.what });
}

function showRun(id, seq, view) {
  loadRun(id).then(function (run) {
    var total = run.run.eventCount;
    if (seq === null) seq = total;
    app.textContent = '';
    var r = run.run;
    app.appendChild(el('h1', {}, [el('a', { href: '#/', text: 'Runs' }), ' / run ' + r.id + ': ' + r.tracePath + ' on ' + r.variant + (r.flags.length ? ' +' + r.flags.join(' +') : '')]));
    app.appendChild(el('p', { id: 'run-counts', text: countsText(run.counts) }));
    app.appendChild(el('nav', {}, [
      el('a', { href: '#/run/' + id + '/event/' + seq, text: 'state' }), ' | ',
      el('a', { href: '#/run/' + id + '/audit', id: 'audit-link', text: 'audit' }),
    ]));
    if (view === 'audit') return showAudit(id, run);
    var scrub = el('input', { type: 'range', id: 'scrubber', min: '0', max: String(total), value: String(seq) });
    scrub.addEventListener('change', function () { go('#/run/' + id + '/event/' + scrub.value); });
    var k = opAfter(run, seq);
    app.appendChild(el('div', { class: 'bar' }, [
      el('button', { id: 'step-back', text: '\u25c0 op', onclick: function () { step(id, run, seq, true); } }), ' ',
      scrub, ' ',
      el('button', { id: 'step-forward', text: 'op \u25b6', onclick: function () { step(id, run, seq, false); } }), ' ',
      el('span', { id: 'position', text: 'event ' + seq + ' of ' + total + (k >= 0 ? ', after op ' + k : ', initial state') }),
    ]));
    var findings = el('ul', { id: 'findings' });
    run.findings.forEach(function (f) {
      var target = f.seq > 0 ? f.seq : (run.ops[f.op] ? run.ops[f.op].lastSeq : 0);
      findings.appendChild(el('li', {}, [findingBadge(f), ' ', el('a', { href: '#/run/' + id + '/event/' + target, class: 'finding-link', 'data-kind': f.what, text: 'event ' + target + ' (op ' + f.op + ')' }), ': ' + f.text]));
    });
    app.appendChild(el('section', {}, [el('h2', { text: 'Findings' }), findings]));
    var main = el('div', { class: 'columns' });
    var left = el('section', { id: 'timeline' }, [el('h2', { text: 'Timeline' })]);
    var right = el('section', { id: 'state' }, [el('h2', { text: 'State after event ' + seq })]);
    main.appendChild(left);
    main.appendChild(right);
    app.appendChild(main);
    drawTimeline(left, id, run, seq);
    drawTools(app, id, run, seq);
    var t0 = performance.now();
    Promise.all([api('/api/runs/' + id + '/view?seq=' + seq), seq > 0 ? api('/api/runs/' + id + '/events?from=' + seq + '&to=' + seq) : Promise.resolve([])]).then(function (res) {
      drawState(right, id, res[0], res[1][0] || null);
      if (cache.lastStep && cache.lastStep.seq === seq) highlight(right, cache.lastStep);
      document.body.setAttribute('data-render-ms', String(performance.now() - t0));
      document.body.setAttribute('data-ready', String(seq));
    }).catch(function (e) { showError(right, e); });
  }).catch(function (e) { showError(app, e); });
}

function drawTimeline(node, id, run, seq) {
  var list = el('ol', { class: 'ops', start: '0' });
  var byOp = {};
  run.findings.forEach(function (f) { (byOp[f.op] = byOp[f.op] || []).push(f); });
  run.ops.forEach(function (o) {
    var here = o.firstSeq <= seq && seq <= o.lastSeq;
    var summary = el('summary', {}, [
      el('a', { href: '#/run/' + id + '/event/' + o.lastSeq, text: 'op ' + o.index }),
      ' line ' + o.line + ' ' + o.op + ' ' + (o.errno || 'ok') + ' (events ' + o.firstSeq + '..' + o.lastSeq + ')',
    ]);
    (byOp[o.index] || []).forEach(function (f) { summary.appendChild(document.createTextNode(' ')); summary.appendChild(findingBadge(f)); });
    var details = el('details', { 'data-op': String(o.index) }, [summary]);
    details.addEventListener('toggle', function () {
      if (!details.open || details.getAttribute('data-loaded')) return;
      details.setAttribute('data-loaded', '1');
      api('/api/runs/' + id + '/events?op=' + o.index).then(function (events) {
        var ul = el('ul', { class: 'events' });
        events.forEach(function (e) {
          ul.appendChild(el('li', {}, [el('a', { href: '#/run/' + id + '/event/' + e.seq, text: String(e.seq) }), ' ' + eventText(e.event)]));
        });
        details.appendChild(ul);
      });
    });
    list.appendChild(el('li', { class: here ? 'op current' : 'op' }, [details]));
  });
  node.appendChild(list);
}

function eventText(e) {
  var parts = [e.type];
  Object.keys(e).forEach(function (k) {
    if (k === 'type' || k === 'v' || k === 'objects') return;
    var v = e[k];
    parts.push(k + ' ' + (typeof v === 'object' ? JSON.stringify(v) : String(v)));
  });
  return parts.join(', ');
}

function pfnLink(id, pfn) {
  return el('a', { href: 'javascript:void 0', class: 'pfn', 'data-pfn': pfn, text: pfn, onclick: function () { showWhy(id, pfn); } });
}

function section(node, title, path) {
  var s = el('div', { class: 'part', 'data-path': path || '' }, [el('h3', { text: title })]);
  node.appendChild(s);
  return s;
}

function drawState(node, id, answer, event) {
  var v = answer.view;
  node.appendChild(el('p', { id: 'at', text: answer.op === null ? 'initial state' : 'op ' + answer.op + ' (trace line ' + answer.line + '), digest ' + v.digest }));
  if (event) node.appendChild(el('p', { id: 'event', class: event.event.type === 'ViolationDetected' ? 'event violation' : 'event', text: 'event ' + event.seq + ': ' + eventText(event.event) }));
  node.appendChild(el('p', { id: 'counts', 'data-path': 'counts', text: 'violations ' + v.counts.violations + ', warns ' + v.counts.warns }));
  var procs = section(node, 'Processes and mms', 'processes');
  var pl = el('ul', { id: 'processes' });
  v.processes.forEach(function (p) { pl.appendChild(el('li', { 'data-path': p.path, text: 'pid ' + p.pid + ': mm ' + p.mm + ', uid ' + p.uid + ', memlock ' + p.memlock + (p.exited ? ', exited' : '') })); });
  v.mms.forEach(function (m) { pl.appendChild(el('li', { 'data-path': m.path, text: 'mm ' + m.id + ': pid ' + m.pid + ', mm_users ' + m.users + ', mm_count ' + m.count + ', locked_vm ' + m.lockedVm + ', pinned_vm ' + m.pinnedVm })); });
  procs.appendChild(pl);
  var acct = section(node, 'Accounting', 'users');
  var al = el('ul', { id: 'accounting' });
  v.users.forEach(function (u) { al.appendChild(el('li', { 'data-path': u.path, text: 'user ' + u.uid + ': locked_vm ' + u.lockedVm })); });
  v.mms.forEach(function (m) { al.appendChild(el('li', { 'data-path': m.path, text: 'mm ' + m.id + ': locked_vm ' + m.lockedVm + ', pinned_vm ' + m.pinnedVm })); });
  acct.appendChild(al);
  var pages = section(node, 'iopt_pages', 'pages');
  v.pages.forEach(function (p) {
    var box = el('div', { class: 'pages', 'data-path': p.path }, [
      el('p', { class: 'npinned', 'data-path': p.path + '.npinned', text: 'pages ' + p.id + ': npages ' + p.npages + ', npinned ' + p.npinned + ', last_npinned ' + p.lastNpinned + ', refs ' + p.refs + ', uptr ' + p.uptr + ', ' + (p.writable ? 'rw' : 'ro') + ', account ' + p.accountMode }),
    ]);
    var xa = el('ul', { class: 'pinned-pfns', 'data-path': p.path + '.xa' });
    p.pinnedPfns.items.forEach(function (run) {
      xa.appendChild(el('li', {}, ['pinned_pfns index ' + run.index + (run.count > 1 ? '..' + (run.index + run.count - 1) : '') + ' -> pfn ', pfnLink(id, run.pfn), ' (' + run.count + ')']));
    });
    more(p.pinnedPfns, xa);
    var at = el('ul', { class: 'access-itree', 'data-path': p.path + '.accessTree' });
    p.accessItree.items.forEach(function (n) { at.appendChild(el('li', { text: 'access_itree node ' + n.id + ': index ' + n.first + '..' + n.last + ', users ' + n.users })); });
    more(p.accessItree, at);
    var dt = el('ul', { class: 'domains-itree', 'data-path': p.path + '.domainsTree' });
    p.domainsItree.items.forEach(function (n) { dt.appendChild(el('li', { text: 'domains_itree node ' + n.id + ': index ' + n.first + '..' + n.last })); });
    more(p.domainsItree, dt);
    box.appendChild(xa); box.appendChild(at); box.appendChild(dt);
    pages.appendChild(box);
  });
  if (!v.pages.length) pages.appendChild(el('p', { text: 'none' }));
  var doms = section(node, 'IO page tables', 'domains');
  v.domains.forEach(function (d) {
    var ul = el('ul', { 'data-path': d.path });
    ul.appendChild(el('li', { text: d.name + ' (' + d.kind + '): ' + d.mappedBytes + ' bytes mapped' }));
    d.extents.items.forEach(function (x) { ul.appendChild(el('li', {}, ['iova ' + x.iova + '..' + x.last + ' -> paddr ' + x.paddr + ', pgsize ' + x.pgsize + ', ' + x.prot])); });
    more(d.extents, ul);
    doms.appendChild(ul);
  });
  var heap = section(node, 'Heap', 'heap');
  var hl = el('ul', { id: 'heap' });
  v.heap.items.forEach(function (h) { hl.appendChild(el('li', { 'data-path': h.path, text: '#' + h.id + ': ' + h.size + ' bytes, ' + h.owner + ', ' + h.tag + ', by ' + h.fn })); });
  more(v.heap, hl);
  heap.appendChild(hl);
  var frames = section(node, 'Physical pages', 'frames');
  var fl = el('ul', { id: 'frames' });
  v.frames.items.forEach(function (f) { fl.appendChild(el('li', {}, ['pfn ', pfnLink(id, f.pfn), ' (' + f.count + '): pins ' + f.pins + ', maps ' + f.maps])); });
  more(v.frames, fl);
  frames.appendChild(fl);
}

function related(a, b) {
  return a === b || a.indexOf(b + '.') === 0 || b.indexOf(a + '.') === 0;
}
function highlight(node, last) {
  var paths = [];
  last.steps.forEach(function (s) { s.patches.forEach(function (p) { paths.push(p.path.join('.')); }); });
  var marked = [];
  node.querySelectorAll('[data-path]').forEach(function (e) {
    var dp = e.getAttribute('data-path');
    if (!dp) return;
    if (paths.some(function (p) { return related(p, dp); })) { e.classList.add('changed'); marked.push(e); }
  });
  var box = el('div', { id: 'changes' }, [el('h3', { text: (last.back ? 'Undid' : 'Applied') + ' op ' + last.steps.map(function (s) { return s.op + ' ' + s.name; }).join(', ') })]);
  var ul = el('ul', {});
  last.steps.forEach(function (s) { s.patches.forEach(function (p) { ul.appendChild(el('li', { text: p.text })); }); });
  box.appendChild(ul);
  node.insertBefore(box, node.children[1] || null);
}

function step(id, run, seq, back) {
  var k = opAfter(run, seq);
  var mid = opOf(run, seq) !== null && run.ops[k + 1] && run.ops[k + 1].firstSeq <= seq;
  var from, to, land;
  if (!back) {
    if (k + 1 >= run.ops.length) return;
    if (k < 0) { go('#/run/' + id + '/event/' + run.ops[0].lastSeq); return; }
    from = k; to = k + 1; land = run.ops[to].lastSeq;
  } else {
    if (mid) { from = k; to = k + 1; } else { if (k <= 0) { go('#/run/' + id + '/event/0'); return; } from = k - 1; to = k; }
    if (from < 0) { go('#/run/' + id + '/event/0'); return; }
    land = run.ops[from].lastSeq;
  }
  api('/api/runs/' + id + '/step?from=' + from + '&to=' + to + (back ? '&back=1' : '')).then(function (answer) {
    cache.lastStep = { seq: land, back: back, steps: answer.steps };
    go('#/run/' + id + '/event/' + land);
  }).catch(function (e) { showError(app, e); });
}

function showWhy(id, pfn) {
  var box = document.getElementById('why');
  box.textContent = '';
  box.appendChild(el('h2', { text: 'Why pfn ' + pfn }));
  api('/api/runs/' + id + '/why?pfn=' + pfn).then(function (answer) {
    var ul = el('ol', { id: 'why-events' });
    answer.events.forEach(function (e) {
      ul.appendChild(el('li', {}, [el('a', { href: '#/run/' + id + '/event/' + e.seq, text: 'event ' + e.seq }), ' op ' + e.op + ': ' + e.text]));
    });
    box.appendChild(el('p', { id: 'why-count', text: answer.events.length + ' events touched pfn ' + pfn }));
    box.appendChild(ul);
    box.scrollIntoView();
  }).catch(function (e) { showError(box, e); });
}

function drawTools(node, id, run, seq) {
  node.appendChild(el('section', { id: 'why' }));
  var a = el('input', { id: 'diff-a', size: '6', value: '0' });
  var b = el('input', { id: 'diff-b', size: '6', value: String(seq) });
  var diffOut = el('ul', { id: 'diff-out' });
  node.appendChild(el('section', {}, [el('h2', { text: 'Diff' }), 'event ', a, ' to event ', b, ' ',
    el('button', { id: 'diff-go', text: 'diff', onclick: function () {
      diffOut.textContent = '';
      api('/api/runs/' + id + '/diff?a=' + encodeURIComponent(a.value) + '&b=' + encodeURIComponent(b.value)).then(function (d) {
        if (!d.diff.differences.length) diffOut.appendChild(el('li', { text: 'no difference' }));
        d.diff.differences.forEach(function (x) { diffOut.appendChild(el('li', { text: diffText(x) })); });
      }).catch(function (e) { showError(diffOut, e); });
    } }), diffOut]));
  var expr = el('input', { id: 'watch-expr', size: '40', placeholder: 'npinned != last_npinned' });
  var watchOut = el('p', { id: 'watch-out' });
  node.appendChild(el('section', {}, [el('h2', { text: 'Watch' }), expr, ' ',
    el('button', { id: 'watch-go', text: 'find the first event where it holds', onclick: function () {
      watchOut.textContent = '';
      api('/api/runs/' + id + '/watch?expr=' + encodeURIComponent(expr.value)).then(function (w) {
        if (w.hit === null) { watchOut.textContent = w.expr + ' never holds'; return; }
        watchOut.appendChild(document.createTextNode(w.expr + ' first holds after '));
        watchOut.appendChild(el('a', { href: '#/run/' + id + '/event/' + w.seq, text: 'event ' + w.seq }));
        watchOut.appendChild(document.createTextNode(' (op ' + w.op + ', trace line ' + w.line + ')'));
      }).catch(function (e) { showError(watchOut, e); });
    } }), watchOut]));
}

function short(v) {
  if (v === undefined) return '(none)';
  var t = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return t.length > 80 ? t.slice(0, 79) + '\u2026' : t;
}
function diffText(x) {
  var at = x.at ? ' ' + x.at.unit + ' ' + x.at.first + (x.at.last !== x.at.first ? '..' + x.at.last : '') : '';
  return x.table + (x.key !== null ? ' ' + x.key : '') + (x.path.length ? ' ' + x.path.join(' ') : '') + at + ': ' + short(x.a) + ' -> ' + short(x.b);
}

// ---- audit ----
function showAudit(id, run) {
  var box = el('section', { id: 'audit' }, [el('h2', { text: 'Audit' })]);
  app.appendChild(box);
  api('/api/runs/' + id + '/audit').then(function (a) {
    box.appendChild(el('p', { id: 'audit-verdict', text: a.ok ? 'the books balance' : 'rules broken: ' + a.rules.filter(function (r) { return !r.ok; }).map(function (r) { return r.rule + ' at op ' + r.op; }).join(', ') }));
    box.appendChild(chart(a.ledger, run.ops.length));
    var first = null;
    a.rules.forEach(function (r) { if (!r.ok && r.op !== null && (first === null || r.op < first.op)) first = r; });
    var rules = el('ul', { id: 'rules' });
    a.rules.forEach(function (r) { rules.appendChild(el('li', { class: r === first ? 'broken first' : r.ok ? 'ok' : 'broken', text: (r.ok ? 'ok ' : 'BROKEN ') + r.rule + (r.ok ? '' : ' at op ' + r.op + ': ' + r.detail) })); });
    box.appendChild(rules);
    var body = el('tbody');
    // A long ledger shows its first LEDGER_ROWS lines and every line of the op where the first rule broke.
    var hidden = 0;
    a.ledger.forEach(function (l, i) {
      if (i >= LEDGER_ROWS && !(first && l.op === first.op)) { hidden++; return; }
      body.appendChild(el('tr', { class: first && l.op === first.op ? 'first-broken' : '' }, [l.seq, l.op, l.line, l.counter, l.owner, l.delta, l.value, l.fn].map(function (c) { return el('td', { text: String(c) }); })));
    });
    if (hidden > 0) body.appendChild(el('tr', {}, [el('td', { colspan: '8', class: 'more', text: hidden + ' more lines (ioptrace audit ' + id + ' prints them all)' })]));
    box.appendChild(el('table', { id: 'ledger' }, [el('thead', {}, [el('tr', {}, ['seq', 'op', 'line', 'counter', 'owner', 'delta', 'after', 'fn'].map(function (h) { return el('th', { text: h }); }))]), body]));
  }).catch(function (e) { showError(box, e); });
}
function chart(ledger, ops) {
  var ns = 'http://www.w3.org/2000/svg';
  var svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('id', 'audit-chart');
  svg.setAttribute('width', '720');
  svg.setAttribute('height', '200');
  var series = {};
  var max = 1;
  ledger.forEach(function (l) {
    var key = l.counter + ':' + (l.owner === null ? '-' : l.owner);
    (series[key] = series[key] || [[0, 0]]).push([l.op, l.value]);
    if (Math.abs(l.value) > max) max = Math.abs(l.value);
  });
  var colors = ['#c33', '#36c', '#393', '#c93', '#939', '#399'];
  Object.keys(series).forEach(function (key, i) {
    var pts = [];
    var prev = 0;
    series[key].forEach(function (p) {
      var x = 10 + (700 * p[0]) / Math.max(1, ops);
      pts.push(x + ',' + (190 - (180 * prev) / max));
      pts.push(x + ',' + (190 - (180 * p[1]) / max));
      prev = p[1];
    });
    var line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', pts.join(' '));
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', colors[i % colors.length]);
    var title = document.createElementNS(ns, 'title');
    title.textContent = key;
    line.appendChild(title);
    svg.appendChild(line);
  });
  return svg;
}

// ---- bisect ----
function sideText(run, op) {
  if (!op) return 'run ' + run.run + ': ' + run.variant + (run.flags.length ? ' +' + run.flags.join(' +') : '') + ', ' + run.ops + ' ops';
  return 'run ' + run.run + ' (' + run.variant + (run.flags.length ? ' +' + run.flags.join(' +') : '') + '): op ' + op.index + ' ' + (op.errno || 'ok') + ', digest ' + op.digest;
}
function showBisect(a, b) {
  app.textContent = '';
  app.appendChild(el('h1', {}, [el('a', { href: '#/', text: 'Runs' }), ' / run ' + a + ' beside run ' + b]));
  var box = el('section', { id: 'bisect' });
  app.appendChild(box);
  api('/api/bisect?a=' + a + '&b=' + b).then(function (r) {
    box.appendChild(el('p', { id: 'bisect-verdict', text: r.diverged ? 'first divergent op ' + r.op + ' (' + r.name + ', trace line ' + r.line + '): ' + r.differs.join(', ') : 'the runs agree over ' + r.compared + ' ops' }));
    var cols = el('div', { class: 'columns' });
    [['a', r.runs.a, r.a], ['b', r.runs.b, r.b]].forEach(function (s) {
      cols.appendChild(el('div', { class: 'side', id: 'side-' + s[0] }, [
        el('h3', {}, [el('a', { href: '#/run/' + s[1].run + (r.diverged && s[2] ? '/event/' + s[2].lastSeq : ''), text: sideText(s[1], null) })]),
        el('p', { text: s[2] ? sideText(s[1], s[2]) : '' }),
      ]));
    });
    box.appendChild(cols);
    if (r.diverged) {
      var ul = el('ul', { id: 'bisect-diff' });
      r.diff.state.forEach(function (x) { ul.appendChild(el('li', { text: x.text })); });
      if (!r.diff.state.length) ul.appendChild(el('li', { text: 'no difference in the state' }));
      box.appendChild(el('h3', { text: 'Structural diff after op ' + r.op }));
      box.appendChild(ul);
    }
  }).catch(function (e) { showError(box, e); });
}

function route() {
  var h = location.hash || '#/';
  var m;
  if ((m = /^#\/run\/(\d+)\/event\/(\d+)$/.exec(h))) showRun(Number(m[1]), Number(m[2]));
  else if ((m = /^#\/run\/(\d+)\/audit$/.exec(h))) showRun(Number(m[1]), 0, 'audit');
  else if ((m = /^#\/run\/(\d+)$/.exec(h))) showRun(Number(m[1]), null);
  else if ((m = /^#\/bisect\/(\d+)\/(\d+)$/.exec(h))) showBisect(m[1], m[2]);
  else showRuns();
}
window.addEventListener('hashchange', route);
route();
`;
