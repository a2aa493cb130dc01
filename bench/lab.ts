// Runs every race-lab scenario once, side by side, and writes bench/results/lab.{json,md}: each
// scenario's table, and each strategy's throughput and p99 as ratios to `conditional` in the
// same run (the machine is shared and noisy: only same-run ratios compare).
//   npm run bench:lab            all scenarios (servers from DATABASE_URL_PG/_MYSQL/REDIS_URL, else throwaway)
//   npm run bench:lab -- last-unit two-instances
//   npm run bench:lab -- --render   rewrite lab.md from the committed lab.json
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLab } from '../src/lab/driver.ts';
import { formatTable } from '../src/lab/report.ts';
import { SCENARIOS } from '../src/lab/scenarios.ts';
import type { LabReport, LabRow } from '../src/lab/types.ts';

const render = process.argv.includes('--render');
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const scenarios = render ? [] : SCENARIOS.filter((s) => only.length === 0 || only.includes(s.name));
const outDir = mkdtempSync(join(tmpdir(), 'allot-bench-lab-'));
const reports: LabReport[] = render ? (JSON.parse(readFileSync(new URL('./results/lab.json', import.meta.url), 'utf8')) as LabReport[]).map((r) => ({ ...r, rows: r.rows.map((x) => ({ ...x, timeline: [] })) })) : [];
for (const s of scenarios) {
  process.stderr.write(`[bench:lab] ${s.name}…\n`);
  const report = await runLab({
    scenario: s.name,
    databaseUrls: { ...(process.env.DATABASE_URL_PG ? { postgres: process.env.DATABASE_URL_PG } : {}), ...(process.env.DATABASE_URL_MYSQL ? { mysql: process.env.DATABASE_URL_MYSQL } : {}) },
    ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
    outDir,
    log: (l) => process.stderr.write(`[lab] ${l}\n`),
  });
  process.stderr.write(`${formatTable(report)}\n`);
  reports.push(report);
}

const ratio = (a: number, b: number | undefined) => (b ? (a / b).toFixed(2) : '—');
function ratios(report: LabReport): string[] {
  const lines = ['| strategy | backend | workers | req/s | ÷ conditional | p50 ms | p99 ms | ÷ conditional | verdict |', '|---|---|---:|---:|---:|---:|---:|---:|---|'];
  for (const r of report.rows) {
    const base: LabRow | undefined = report.rows.find((x) => x.strategy === 'conditional' && x.backend === r.backend);
    const verdict = r.passed ? 'holds' : r.unsafe ? 'violates (unsafe, expected)' : 'VIOLATES';
    lines.push(`| ${r.strategy} | ${r.backend} | ${r.workers} | ${r.requestsPerSec} | ${ratio(r.requestsPerSec, base?.requestsPerSec)} | ${r.p50Ms} | ${r.p99Ms} | ${ratio(r.p99Ms, base?.p99Ms)} | ${verdict} |`);
  }
  return lines;
}

const md = [
  '# Race lab results',
  '',
  `\`npm run bench:lab\` on ${new Date().toISOString().slice(0, 10)}, this 2-core machine (workers, databases and Redis share the cores).`,
  'Ratios compare rows of the same run only. req/s counts every answered request (refusals included): in the',
  'stock-limited scenarios it, not claims/s, says what a strategy costs.',
  '',
  ...reports.flatMap((r) => [`## ${r.scenario}`, '', r.description, '', '```', formatTable(r).trimEnd(), '```', '', ...ratios(r), '']),
].join('\n');
writeFileSync(new URL('./results/lab.md', import.meta.url), `${md}\n`);
if (!render) writeFileSync(new URL('./results/lab.json', import.meta.url), `${JSON.stringify(reports.map((r) => ({ ...r, rows: r.rows.map(({ timeline: _t, ...rest }) => rest) })), null, 2)}\n`);
process.stderr.write(render ? "[bench:lab] wrote bench/results/lab.md from lab.json\n" : `[bench:lab] wrote bench/results/lab.md and lab.json (histories in ${outDir})\n`);
