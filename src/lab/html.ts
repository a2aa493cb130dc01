// The lab's HTML report: one self-contained file (inline CSS and SVG, no scripts, no network) that
// can be mailed around or attached to CI. Also holds the columns and verdicts the text table shares.
import type { LabReport, LabRow } from './types.ts';

export type Verdict = 'ok' | 'ok (unsafe)' | 'VIOLATED' | 'violated (expected: unsafe)';

/** An unsafe strategy that passed is flagged: the run did not provoke the race it is there to show. */
export function verdictOf(row: LabRow): Verdict {
  if (row.passed) return row.unsafe ? 'ok (unsafe)' : 'ok';
  return row.unsafe ? 'violated (expected: unsafe)' : 'VIOLATED';
}

export interface LabColumn {
  header: string;
  numeric: boolean;
  cell(row: LabRow): string;
  /** a value that deserves attention (a safety counter above zero) */
  bad?(row: LabRow): boolean;
}

function int(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v)) : '-';
}

/** Sub-millisecond latencies are common with PGlite, so small values keep two decimals. */
function ms(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function rate(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1);
}

const positive = (v: number): boolean => Number.isFinite(v) && v > 0;

/** The columns of both the terminal table and the HTML table, in order. */
export const labColumns: readonly LabColumn[] = [
  { header: 'strategy', numeric: false, cell: (r) => r.strategy },
  { header: 'backend', numeric: false, cell: (r) => r.backend },
  { header: 'workers', numeric: true, cell: (r) => int(r.workers) },
  { header: 'requests', numeric: true, cell: (r) => int(r.requests) },
  { header: 'ok', numeric: true, cell: (r) => int(r.ok) },
  { header: 'sold out', numeric: true, cell: (r) => int(r.soldOut) },
  { header: 'limit', numeric: true, cell: (r) => int(r.userLimit) },
  // Other refusals and errors that issued nothing (503 give-ups, lock timeouts), and answers never learned.
  { header: 'errors', numeric: true, cell: (r) => int(r.errors) },
  { header: 'unknown', numeric: true, cell: (r) => int(r.unknown) },
  { header: 'oversold', numeric: true, cell: (r) => int(r.oversold), bad: (r) => positive(r.oversold) },
  { header: 'duplicates', numeric: true, cell: (r) => int(r.duplicates), bad: (r) => positive(r.duplicates) },
  { header: 'lost acks', numeric: true, cell: (r) => int(r.lostAcks), bad: (r) => positive(r.lostAcks) },
  { header: 'retries', numeric: true, cell: (r) => int(r.retries) },
  { header: 'req/s', numeric: true, cell: (r) => rate(r.requestsPerSec) },
  { header: 'claims/s', numeric: true, cell: (r) => rate(r.claimsPerSec) },
  { header: 'p50 ms', numeric: true, cell: (r) => ms(r.p50Ms) },
  { header: 'p99 ms', numeric: true, cell: (r) => ms(r.p99Ms) },
  { header: 'verdict', numeric: false, cell: (r) => verdictOf(r), bad: (r) => !r.passed },
];

/** "naive/postgres", with the worker count only when the report has several, so labels stay short. */
export function rowLabel(row: LabRow, report: LabReport): string {
  const workers = new Set(report.rows.map((r) => r.workers));
  return workers.size > 1 ? `${row.strategy}/${row.backend} ×${row.workers}` : `${row.strategy}/${row.backend}`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const esc = (v: unknown): string => escapeHtml(String(v));

/** Every coordinate goes through here: a NaN or Infinity in an SVG attribute silently breaks the drawing. */
function n(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v * 10) / 10) : '0';
}

const fin = (v: number): number => (Number.isFinite(v) ? v : 0);

/** 0..max in 1/2/5 x 10^k steps; a max of 0 (an all-zero run) still yields a usable 0..1 axis. */
function niceTicks(max: number, target = 5): number[] {
  const top = Number.isFinite(max) && max > 0 ? max : 1;
  const raw = top / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag);
  const ticks: number[] = [];
  for (let i = 0; i * step < top + step * 1e-9 || ticks.length < 2; i++) ticks.push(i * step);
  if ((ticks[ticks.length - 1] ?? 0) < top) ticks.push(ticks.length * step);
  return ticks.map((t) => Math.round(t * 1e6) / 1e6);
}

function tickLabel(v: number): string {
  if (Math.abs(v) >= 10000) return `${Math.round(v / 100) / 10}k`;
  return String(Math.round(v * 100) / 100);
}

const CHAR_W = 6.6; // rough width of a 12px sans-serif character, to size label gutters without a DOM
const WIDTH = 800;

function truncate(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const COLORS = { ok: '#3b6fb6', violated: '#b71c1c', expected: '#e57373', p50: '#5b9bd5', p99: '#1f3f73' };
// Red comes last: in this report red means a violation, so a passing row should rarely get it.
const SERIES = ['#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#d62728'];

function barColor(row: LabRow): string {
  if (row.passed) return COLORS.ok;
  return row.unsafe ? COLORS.expected : COLORS.violated;
}

interface LegendItem {
  label: string;
  color: string;
  /** drawn as a line (a series of the line chart) with this dash pattern, '' for solid */
  line?: string;
}

/** Legend laid out in as many columns as fit; returns the markup and the height it took. */
function legend(items: LegendItem[], x: number, y: number, width: number): { svg: string; height: number } {
  if (items.length === 0) return { svg: '', height: 0 };
  const itemW = Math.min(width, Math.max(...items.map((i) => i.label.length)) * CHAR_W + 34);
  const cols = Math.max(1, Math.floor(width / itemW));
  const parts = items.map((item, i) => {
    const ix = x + (i % cols) * itemW;
    const iy = y + Math.floor(i / cols) * 18;
    const swatch =
      item.line !== undefined
        ? `<line x1="${n(ix)}" y1="${n(iy + 6)}" x2="${n(ix + 18)}" y2="${n(iy + 6)}" stroke="${item.color}" stroke-width="3"${item.line ? ` stroke-dasharray="${item.line}"` : ''}/>`
      : `<rect x="${n(ix)}" y="${n(iy)}" width="18" height="12" fill="${item.color}"/>`;
    return `<g class="legend-item">${swatch}<text x="${n(ix + 24)}" y="${n(iy + 10)}">${esc(item.label)}</text></g>`;
  });
  return { svg: `<g class="legend">${parts.join('')}</g>`, height: Math.ceil(items.length / cols) * 18 };
}

interface BarSeries {
  name: string;
  value(row: LabRow): number;
  color(row: LabRow): string;
  format(v: number): string;
}

/** Horizontal bars: row labels like "pessimistic/mariadb ×64" stay readable at any row count. */
function barChart(report: LabReport, kind: string, title: string, unit: string, series: BarSeries[], legendItems: LegendItem[]): string {
  const rows = report.rows;
  const labels = rows.map((r) => truncate(rowLabel(r, report), 36));
  const gutter = Math.max(60, Math.max(0, ...labels.map((l) => l.length)) * CHAR_W + 12);
  const barH = 14;
  const groupH = series.length * barH + 10;
  const top = 30;
  const plotX = gutter;
  const plotW = WIDTH - gutter - 70; // right margin leaves room for the value printed after the bar
  const plotH = Math.max(groupH, rows.length * groupH);
  const max = Math.max(0, ...rows.flatMap((r) => series.map((s) => fin(s.value(r)))));
  const ticks = niceTicks(max);
  const axisMax = ticks[ticks.length - 1] ?? 1;
  const sx = (v: number): number => plotX + (Math.max(0, fin(v)) / axisMax) * plotW;

  const grid = ticks
    .map((t) => {
      const x = sx(t);
      return (
        `<line class="grid" x1="${n(x)}" y1="${n(top)}" x2="${n(x)}" y2="${n(top + plotH)}"/>` +
        `<text class="tick" x="${n(x)}" y="${n(top + plotH + 14)}" text-anchor="middle">${esc(tickLabel(t))}</text>`
      );
    })
    .join('');

  const bars = rows
    .map((row, i) => {
      const gy = top + i * groupH + 5;
      const label = `<text class="row-label" x="${n(plotX - 6)}" y="${n(gy + (series.length * barH) / 2 + 4)}" text-anchor="end"><title>${esc(rowLabel(row, report))}</title>${esc(labels[i] ?? '')}</text>`;
      const rects = series
        .map((s, j) => {
          const v = fin(s.value(row));
          const y = gy + j * barH;
          const w = Math.max(0, sx(v) - plotX);
          const tip = `${rowLabel(row, report)} — ${s.name}: ${s.format(v)} ${unit}`;
          return (
            `<rect class="bar" x="${n(plotX)}" y="${n(y + 1)}" width="${n(w)}" height="${n(barH - 2)}" fill="${s.color(row)}"><title>${esc(tip)}</title></rect>` +
            `<text class="value" x="${n(plotX + w + 4)}" y="${n(y + barH - 3)}">${esc(s.format(v))}</text>`
          );
        })
        .join('');
      return `<g class="bar-group">${label}${rects}</g>`;
    })
    .join('');

  const empty = rows.length === 0 ? `<text class="empty" x="${n(plotX + plotW / 2)}" y="${n(top + plotH / 2 + 4)}" text-anchor="middle">no rows</text>` : '';
  const axisY = top + plotH;
  const axes =
    `<line class="axis" x1="${n(plotX)}" y1="${n(top)}" x2="${n(plotX)}" y2="${n(axisY)}"/>` +
    `<line class="axis" x1="${n(plotX)}" y1="${n(axisY)}" x2="${n(plotX + plotW)}" y2="${n(axisY)}"/>` +
    `<text class="axis-label" x="${n(plotX + plotW / 2)}" y="${n(axisY + 32)}" text-anchor="middle">${esc(unit)}</text>`;
  const leg = legend(legendItems, plotX, axisY + 46, plotW);
  const height = axisY + 46 + leg.height + 6;
  return svgOpen(kind, height, title) + `<text class="chart-title" x="10" y="18">${esc(title)}</text>` + grid + axes + bars + empty + leg.svg + '</svg>';
}

function svgOpen(kind: string, height: number, title: string): string {
  return `<svg data-chart="${kind}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${n(height)}" width="${WIDTH}" height="${n(height)}" role="img" aria-label="${esc(title)}">`;
}

function throughputChart(report: LabReport): string {
  const used = new Set(report.rows.map(barColor));
  const items: LegendItem[] = [
    { label: 'passed', color: COLORS.ok },
    { label: 'violated', color: COLORS.violated },
    { label: 'violated (expected: unsafe)', color: COLORS.expected },
  ].filter((i) => used.has(i.color) || report.rows.length === 0);
  return barChart(
    report,
    'throughput',
    'Throughput (claims issued per second)',
    'claims/s',
    [{ name: 'throughput', value: (r) => r.claimsPerSec, color: barColor, format: rate }],
    items,
  );
}

function latencyChart(report: LabReport): string {
  return barChart(
    report,
    'latency',
    'Latency per request (p50 and p99)',
    'ms',
    [
      { name: 'p50', value: (r) => r.p50Ms, color: () => COLORS.p50, format: ms },
      { name: 'p99', value: (r) => r.p99Ms, color: () => COLORS.p99, format: ms },
    ],
    [
      { label: 'p50', color: COLORS.p50 },
      { label: 'p99', color: COLORS.p99 },
    ],
  );
}

/** Past the palette, dashes tell apart rows that would otherwise share a colour. */
function seriesDash(i: number): string {
  return i >= SERIES.length ? `${2 + (Math.floor(i / SERIES.length) % 3) * 3} 3` : '';
}

/** Cumulative acknowledged claims over time against the stock: an oversell climbs over the dashed line. */
function issuedChart(report: LabReport): string {
  const rows = report.rows;
  const left = 64;
  const top = 30;
  const plotW = WIDTH - left - 90; // right margin holds the stock label
  const plotH = 260;
  const stocks = [...new Set(rows.map((r) => fin(r.stock)))].sort((a, b) => a - b);
  const maxT = Math.max(0, ...rows.flatMap((r) => [fin(r.durationMs), ...r.timeline.map(([t]) => fin(t))]));
  const maxY = Math.max(0, ...stocks, ...rows.flatMap((r) => r.timeline.map(([, c]) => fin(c))));
  const xTicks = niceTicks(maxT, 6);
  const yTicks = niceTicks(maxY * 1.05, 5);
  const xMax = xTicks[xTicks.length - 1] ?? 1;
  const yMax = yTicks[yTicks.length - 1] ?? 1;
  const sx = (t: number): number => left + (Math.max(0, fin(t)) / xMax) * plotW;
  const sy = (c: number): number => top + plotH - (Math.max(0, fin(c)) / yMax) * plotH;
  const bottom = top + plotH;

  const grid =
    yTicks
      .map(
        (t) =>
          `<line class="grid" x1="${n(left)}" y1="${n(sy(t))}" x2="${n(left + plotW)}" y2="${n(sy(t))}"/>` +
          `<text class="tick" x="${n(left - 6)}" y="${n(sy(t) + 4)}" text-anchor="end">${esc(tickLabel(t))}</text>`,
      )
      .join('') +
    xTicks
      .map(
        (t) =>
          `<line class="grid" x1="${n(sx(t))}" y1="${n(top)}" x2="${n(sx(t))}" y2="${n(bottom)}"/>` +
          `<text class="tick" x="${n(sx(t))}" y="${n(bottom + 14)}" text-anchor="middle">${esc(tickLabel(t))}</text>`,
      )
      .join('');

  // Shade above the stock when there is one stock: any line entering the red zone oversold.
  const zone =
    stocks.length === 1 && rows.length > 0
      ? `<rect class="oversell-zone" x="${n(left)}" y="${n(top)}" width="${n(plotW)}" height="${n(Math.max(0, sy(stocks[0] ?? 0) - top))}"><title>above the stock: oversold</title></rect>`
      : '';

  const stockLines = stocks
    .map((s) => {
      const y = sy(s);
      return (
        `<line class="stock-line" data-stock="${n(s)}" x1="${n(left)}" y1="${n(y)}" x2="${n(left + plotW)}" y2="${n(y)}"><title>stock ${esc(n(s))}</title></line>` +
        `<text class="stock-label" x="${n(left + plotW + 4)}" y="${n(y + 4)}">stock ${esc(n(s))}</text>`
      );
    })
    .join('');

  const lines = rows
    .map((row, i) => {
      const color = SERIES[i % SERIES.length] ?? '#000';
      const dash = seriesDash(i) ? ` stroke-dasharray="${seriesDash(i)}"` : '';
      const pts = row.timeline.filter(([t, c]) => Number.isFinite(t) && Number.isFinite(c));
      if (pts.length === 0) return '';
      // Nothing is issued before the run starts, so each line begins at the origin.
      const first = pts[0];
      const all: Array<[number, number]> = first && (first[0] > 0 || first[1] > 0) ? [[0, 0], ...pts] : pts;
      const points = all.map(([t, c]) => `${n(sx(t))},${n(sy(c))}`).join(' ');
      const last = all[all.length - 1] ?? [0, 0];
      const tip = `${rowLabel(row, report)}: ${int(last[1])} issued after ${int(last[0])} ms (stock ${int(row.stock)})`;
      return (
        `<g class="series" data-row="${i}">` +
        `<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"${dash}><title>${esc(tip)}</title></polyline>` +
        `<circle cx="${n(sx(last[0]))}" cy="${n(sy(last[1]))}" r="3" fill="${color}"><title>${esc(tip)}</title></circle></g>`
      );
    })
    .join('');

  const axes =
    `<line class="axis" x1="${n(left)}" y1="${n(top)}" x2="${n(left)}" y2="${n(bottom)}"/>` +
    `<line class="axis" x1="${n(left)}" y1="${n(bottom)}" x2="${n(left + plotW)}" y2="${n(bottom)}"/>` +
    `<text class="axis-label" x="${n(left + plotW / 2)}" y="${n(bottom + 32)}" text-anchor="middle">ms since start</text>` +
    `<text class="axis-label" transform="translate(16 ${n(top + plotH / 2)}) rotate(-90)" text-anchor="middle">claims issued (cumulative ok)</text>`;

  const items: LegendItem[] = rows.map((row, i) => ({
    label: truncate(rowLabel(row, report), 36) + (row.timeline.length === 0 ? ' (no data)' : ''),
    color: SERIES[i % SERIES.length] ?? '#000',
    line: seriesDash(i),
  }));
  if (stocks.length > 0) items.push({ label: 'stock', color: '#555', line: '6 4' });
  const leg = legend(items, left, bottom + 46, plotW + 60);
  const empty = rows.length === 0 ? `<text class="empty" x="${n(left + plotW / 2)}" y="${n(top + plotH / 2)}" text-anchor="middle">no rows</text>` : '';
  const height = bottom + 46 + leg.height + 6;
  const title = 'Claims issued over time';
  return svgOpen('issued', height, title) + `<text class="chart-title" x="10" y="18">${esc(title)}</text>` + zone + grid + axes + stockLines + lines + empty + leg.svg + '</svg>';
}

function resultsTable(report: LabReport): string {
  const head = labColumns.map((c) => `<th${c.numeric ? ' class="num"' : ''}>${esc(c.header)}</th>`).join('');
  const body = report.rows
    .map((row) => {
      const classes = row.passed ? [] : row.unsafe ? ['violated', 'expected'] : ['violated'];
      const failed = row.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message}`);
      const title = failed.length > 0 ? ` title="${esc(failed.join('\n'))}"` : '';
      const cells = labColumns
        .map((c) => {
          const cls = [c.numeric ? 'num' : '', c.bad?.(row) ? 'bad' : ''].filter(Boolean).join(' ');
          return `<td${cls ? ` class="${cls}"` : ''}>${esc(c.cell(row))}</td>`;
        })
        .join('');
      return `<tr${classes.length ? ` class="${classes.join(' ')}"` : ''}${title}>${cells}</tr>`;
    })
    .join('\n');
  const empty = report.rows.length === 0 ? `<tr><td colspan="${labColumns.length}" class="empty">no rows</td></tr>` : '';
  return `<table class="results"><thead><tr>${head}</tr></thead><tbody>\n${body}${empty}\n</tbody></table>`;
}

function failedChecks(report: LabReport): string {
  const items = report.rows.flatMap((row) =>
    row.checks
      .filter((c) => !c.ok)
      .map(
        (c) =>
          `<li${row.unsafe ? ' class="expected"' : ''}><b>${esc(rowLabel(row, report))}</b>: <code>${esc(c.name)}</code>: ${esc(c.message)}` +
          `${row.unsafe ? ' <i>(expected: unsafe strategy)</i>' : ''}</li>`,
      ),
  );
  return items.length > 0 ? `<h2>Failed checks</h2><ul class="failed">${items.join('')}</ul>` : '';
}

const CSS = `
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 24px; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.meta { color: #555; margin: 2px 0; }
table.results { border-collapse: collapse; font-size: 13px; }
table.results th, table.results td { border: 1px solid #ccc; padding: 3px 8px; white-space: nowrap; }
table.results th { background: #f0f0f0; text-align: left; }
table.results .num { text-align: right; font-variant-numeric: tabular-nums; }
tr.violated td { background: #f4b4b4; }
tr.violated.expected td { background: #fbd3d3; }
td.bad { color: #b00000; font-weight: bold; }
tr.expected td.bad:last-child { color: #8a2a2a; font-weight: normal; }
ul.failed li { color: #b00000; }
ul.failed li.expected { color: #8a2a2a; }
figure { margin: 16px 0; }
svg { max-width: 100%; height: auto; font: 12px system-ui, sans-serif; background: #fff; }
svg .chart-title { font-size: 14px; font-weight: bold; fill: #222; }
svg .axis { stroke: #333; stroke-width: 1; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .tick, svg .value { fill: #444; font-size: 11px; }
svg .row-label, svg .legend text { fill: #222; }
svg .axis-label { fill: #555; font-size: 12px; }
svg .stock-line { stroke: #555; stroke-width: 1.5; stroke-dasharray: 6 4; }
svg .stock-label { fill: #333; font-size: 11px; }
svg .oversell-zone { fill: #c62828; fill-opacity: 0.06; }
svg .empty { fill: #888; font-style: italic; }
`;

/** The whole report as one HTML document; every string from the report is escaped. */
export function renderHtml(report: LabReport): string {
  const violated = report.rows.filter((r) => !r.passed);
  const expected = violated.filter((r) => r.unsafe).length;
  const faults = [...new Set(report.rows.flatMap((r) => r.faults))];
  const summary =
    `${report.rows.length} row${report.rows.length === 1 ? '' : 's'}, ${violated.length} violated` +
    (violated.length > 0 ? ` (${expected} expected from unsafe strategies, ${violated.length - expected} unexpected)` : '');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>allot lab: ${esc(report.scenario)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>allot lab: ${esc(report.scenario)}</h1>
<p class="meta description">${esc(report.description)}</p>
<p class="meta">started <time datetime="${esc(report.startedAt)}">${esc(report.startedAt)}</time> · ${esc(summary)}</p>
${faults.length > 0 ? `<p class="meta">faults injected: ${esc(faults.join(', '))}</p>` : ''}
<h2>Results</h2>
${resultsTable(report)}
${failedChecks(report)}
<h2>Charts</h2>
<figure>${throughputChart(report)}</figure>
<figure>${latencyChart(report)}</figure>
<figure>${issuedChart(report)}</figure>
</body>
</html>
`;
}
