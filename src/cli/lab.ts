// `allot lab`: run a race-lab scenario and print the table; --json and --html write the results.
import { mkdtempSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { dialectOf } from '../adapters/sql/connect.ts';
import { AllotError } from '../core/errors.ts';
import { plannedRuns, runLab } from '../lab/driver.ts';
import { FAULT_KINDS, parseFault } from '../lab/faults.ts';
import { DEFAULT_PAYOUT_WORKERS, PAYOUT_SCENARIO, formatPayoutTable, payoutRuns, runPayoutLab, type PayoutBackend } from '../lab/payout-scenario.ts';
import { createProgress } from '../lab/progress.ts';
import { formatTable, writeHtml, writeJson } from '../lab/report.ts';
import { DEFAULT_WORKERS, SCENARIOS, findScenario, type LabBackend } from '../lab/scenarios.ts';
import { EXIT } from './exit-codes.ts';

export interface LabFlags {
  list?: boolean;
  scenario?: string;
  backend?: string[];
  strategies?: string;
  workers?: string;
  databaseUrl?: string[];
  redisUrl?: string;
  target?: string[];
  token?: string;
  fault?: string[];
  backstop?: boolean;
  json?: string;
  html?: string;
  outDir?: string;
}

const BACKENDS: LabBackend[] = ['pglite', 'postgres', 'mysql'];

function listScenarios(): void {
  for (const s of SCENARIOS) {
    const strategies = [...new Set(s.runs(DEFAULT_WORKERS).map((r) => `${r.strategy}${r.workers !== DEFAULT_WORKERS ? `@${r.workers}` : ''}`))];
    process.stdout.write(`${s.name.padEnd(18)} ${s.description}\n${''.padEnd(18)} field report ${s.report}; backends ${s.backends.join(', ')}; runs ${strategies.join(', ')}\n`);
  }
  const p = PAYOUT_SCENARIO;
  const designs = payoutRuns(DEFAULT_PAYOUT_WORKERS).map((r) => r.design);
  process.stdout.write(`${p.name} ${p.description}\n${''.padEnd(18)} field report ${p.report}; backends ${p.backends.join(', ')} (or mysql); designs: ${designs.join('; ')}\n`);
  process.stdout.write(`\nfaults (--fault KIND[:ARG][@WHEN], WHEN = 500ms | 2s | 300ops):\n`);
  for (const [k, v] of Object.entries(FAULT_KINDS)) process.stdout.write(`  ${k.padEnd(16)} ${v}\n`);
}

function invalid(message: string): never {
  throw new AllotError('VALIDATION_FAILED', message);
}

/** --database-url, then DATABASE_URL, DATABASE_URL_PG, DATABASE_URL_MYSQL: the first of each kind. */
function serverUrls(o: LabFlags): Partial<Record<'postgres' | 'mysql', string>> {
  const urls: Partial<Record<'postgres' | 'mysql', string>> = {};
  for (const u of [...(o.databaseUrl ?? []), process.env.DATABASE_URL, process.env.DATABASE_URL_PG, process.env.DATABASE_URL_MYSQL]) {
    if (!u) continue;
    const d = dialectOf(u);
    if (d !== 'pglite') urls[d] ??= u;
  }
  return urls;
}

function workerCount(o: LabFlags): number | undefined {
  const workers = o.workers === undefined ? undefined : Number(o.workers);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 1 || workers > 64)) invalid('--workers must be a whole number from 1 to 64');
  return workers;
}

/** `allot lab --scenario red-packet-withdrawal`: the seed's three stages and allot's withdrawal. */
async function payoutLabCommand(o: LabFlags): Promise<void> {
  const unsupported = ([['strategies', o.strategies], ['target', o.target?.length], ['fault', o.fault?.length], ['backstop', o.backstop], ['html', o.html]] as const).filter(([, v]) => v).map(([k]) => `--${k}`);
  if (unsupported.length > 0) invalid(`${PAYOUT_SCENARIO.name} takes --workers, --backend postgres|mysql, --database-url, --json and --out-dir; not ${unsupported.join(', ')}`);
  const backends = (o.backend ?? []).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  for (const b of backends) if (b !== 'postgres' && b !== 'mysql') invalid(`--backend ${b}: ${PAYOUT_SCENARIO.name} runs on postgres or mysql (a PGlite data dir admits one process: no cross-process race)`);
  const workers = workerCount(o);
  const outDir = resolve(o.outDir ?? mkdtempSync(join(tmpdir(), `allot-lab-${PAYOUT_SCENARIO.name}-`)));
  let shown = 0;
  const total = payoutRuns(workers ?? DEFAULT_PAYOUT_WORKERS).length * (backends.length || PAYOUT_SCENARIO.backends.length) * 1000;
  const progress = createProgress({ total, label: PAYOUT_SCENARIO.name, stream: process.stderr, isTTY: process.stderr.isTTY === true });
  const report = await runPayoutLab({
    ...(backends.length ? { backends: backends as PayoutBackend[] } : {}),
    ...(workers ? { workers } : {}),
    databaseUrls: serverUrls(o),
    outDir,
    onProgress: (done) => {
      if (done > shown) progress.tick(done - shown);
      shown = Math.max(shown, done);
    },
    log: (line) => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}[lab] ${line}\n`),
  });
  progress.done();
  process.stdout.write(`\n${report.scenario}: ${report.description}\n\n${formatPayoutTable(report, { color: process.stdout.isTTY === true })}\n`);
  process.stdout.write(`histories: ${outDir}\n`);
  if (o.json) {
    const file = resolve(o.json);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify(report.rows, null, 2) + '\n', 'utf8');
    process.stdout.write(`json: ${file}\n`);
  }
  // A design that must hold (stage 2 on one process, stage 3, allot) and did not: exit 4.
  if (report.rows.some((r) => r.verdict === 'VIOLATION' && !r.unsafe)) process.exitCode = EXIT.INVARIANT;
}

export async function labCommand(o: LabFlags): Promise<void> {
  if (o.list) return listScenarios();
  if (!o.scenario) invalid('name a scenario with --scenario NAME (allot lab --list shows them)');
  if (o.scenario === PAYOUT_SCENARIO.name) return payoutLabCommand(o);
  if (!SCENARIOS.some((s) => s.name === o.scenario)) invalid(`unknown scenario "${o.scenario}"; the scenarios are: ${[...SCENARIOS.map((s) => s.name), PAYOUT_SCENARIO.name].join(', ')} (allot lab --list)`);
  const scenario = findScenario(o.scenario);
  const backends = (o.backend ?? []).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  for (const b of backends) if (!BACKENDS.includes(b as LabBackend)) invalid(`--backend ${b}: choose pglite, postgres or mysql`);
  const workers = workerCount(o);
  const strategies = o.strategies?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const f of o.fault ?? []) parseFault(f);
  const urls = serverUrls(o);
  for (const t of o.target ?? []) {
    const h = new URL(t).hostname;
    if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(h)) invalid(`--target ${t}: the lab drives instances on this machine only (127.0.0.0/8, localhost)`);
  }
  if ((o.target?.length ?? 0) > 0 && !(o.token ?? process.env.ALLOT_ADMIN_TOKEN)) invalid('--target needs the instances\' admin token: --token or ALLOT_ADMIN_TOKEN');
  const outDir = resolve(o.outDir ?? mkdtempSync(join(tmpdir(), `allot-lab-${scenario.name}-`)));
  const total = plannedRuns(scenario, { ...(strategies ? { strategies } : {}), ...(workers ? { workers } : {}) }).length * (backends.length || scenario.backends.length) * scenario.workload().length;
  let shown = 0;
  const progress = createProgress({ total, label: scenario.name, stream: process.stderr, isTTY: process.stderr.isTTY === true });
  const report = await runLab({
    scenario: scenario.name,
    ...(backends.length ? { backends: backends as LabBackend[] } : {}),
    ...(strategies ? { strategies } : {}),
    ...(workers ? { workers } : {}),
    databaseUrls: urls,
    ...(o.redisUrl ?? process.env.REDIS_URL ? { redisUrl: o.redisUrl ?? process.env.REDIS_URL } : {}),
    ...(o.target?.length ? { targets: o.target, token: o.token ?? process.env.ALLOT_ADMIN_TOKEN ?? '' } : {}),
    ...(o.fault?.length ? { faults: o.fault } : {}),
    backstop: o.backstop === true,
    outDir,
    onProgress: (done) => {
      // The driver reports a running total; the progress line counts ticks.
      if (done > shown) progress.tick(done - shown);
      shown = Math.max(shown, done);
    },
    log: (line) => process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}[lab] ${line}\n`),
  });
  progress.done();
  process.stdout.write(`\n${report.scenario}: ${report.description}\n\n${formatTable(report, { color: process.stdout.isTTY === true })}\n`);
  process.stdout.write(`histories: ${outDir}\n`);
  if (o.json) {
    await writeJson(resolve(o.json), report);
    process.stdout.write(`json: ${resolve(o.json)}\n`);
  }
  if (o.html) {
    await writeHtml(resolve(o.html), report);
    process.stdout.write(`html: ${resolve(o.html)}\n`);
  }
  // A safe strategy that violated is a bug: exit 4 (an invariant failed). Unsafe ones are expected to.
  if (report.rows.some((r) => !r.passed && !r.unsafe)) process.exitCode = EXIT.INVARIANT;
}
