// SPDX-License-Identifier: GPL-2.0-only
/** The single page of `ioptrace serve`: markup, style and the inline client script (client.ts). */
import { CLIENT_JS } from './client.js';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin: 0.8em 0 0.3em; } h3 { font-size: 1em; margin: 0.5em 0 0.2em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.columns { display: flex; gap: 2em; align-items: flex-start; } .columns > * { flex: 1; min-width: 0; }
.bar { margin: 0.5em 0; } #scrubber { width: 50%; vertical-align: middle; }
ol.ops { font-family: ui-monospace, monospace; font-size: 12px; padding-left: 3em; }
li.op.current > details > summary { background: #ffe9a8; }
.finding { font-size: 11px; padding: 0 4px; border-radius: 3px; color: #fff; }
.finding.violation { background: #c0392b; } .finding.warn { background: #d68910; } .finding.unmet { background: #7d3c98; }
.event.violation { color: #c0392b; font-weight: bold; }
.changed { background: #d4f5d4; outline: 1px solid #2e8b57; }
#changes { border: 1px solid #2e8b57; padding: 0.3em 0.8em; font-family: ui-monospace, monospace; font-size: 12px; }
#state ul, #why ol { font-family: ui-monospace, monospace; font-size: 12px; }
.error { color: #c0392b; font-weight: bold; }
li.broken.first, tr.first-broken { background: #fadbd8; }
a.pfn { color: #1a5276; }
`;

export function pageHtml(): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ioptrace</title><style>${STYLE}</style></head>
<body><main id="app"></main><script>${CLIENT_JS}</script></body>
</html>
`;
}
