// Shared by the race-lab test files: one run of a scenario against the servers `npm test`
// starts, a row lookup, and the assertion that a row holds every invariant.
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLab, type LabOptions } from '../../src/lab/driver.ts';
import type { LabRow } from '../../src/lab/types.ts';
import { envUrl } from '../helpers/servers.ts';

const outDir = mkdtempSync(join(tmpdir(), 'allot-lab-test-'));
after(() => rmSync(outDir, { recursive: true, force: true }));

export function lab(opts: Omit<LabOptions, 'outDir' | 'databaseUrls'> & Partial<Pick<LabOptions, 'databaseUrls'>>) {
  return runLab({ databaseUrls: { postgres: envUrl('DATABASE_URL_PG'), mysql: envUrl('DATABASE_URL_MYSQL') }, redisUrl: envUrl('REDIS_URL'), outDir, ...opts });
}

export function row(rows: LabRow[], strategy: string, workers?: number, backend?: string): LabRow {
  const r = rows.find((x) => x.strategy === strategy && (workers === undefined || x.workers === workers) && (backend === undefined || x.backend === backend));
  assert.ok(r, `no row for ${strategy}${workers ? ` x${workers}` : ''}`);
  return r;
}

export function holds(r: LabRow): void {
  const failed = r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.message}`);
  assert.deepEqual(failed, [], `${r.strategy}/${r.backend} x${r.workers} violated`);
  assert.equal(r.oversold, 0);
  assert.equal(r.duplicates, 0);
  assert.equal(r.lostAcks, 0);
  assert.equal(r.passed, true);
}

/**
 * The row of an UNSAFE strategy that a scenario exists to show failing. A race is a matter of
 * scheduling: on a loaded machine one run can serialize by chance (a worker descheduled through
 * the whole sell-out), so a run that showed nothing is run again, that strategy alone, up to
 * `attempts` times in all; the test still fails when no run shows the failure.
 */
export async function unsafeRow(rows: LabRow[], strategy: string, shows: (r: LabRow) => boolean, again: () => Promise<LabRow[]>, workers?: number, attempts = 3): Promise<LabRow> {
  let r = row(rows, strategy, workers);
  for (let n = 1; n < attempts && !shows(r); n++) {
    process.stderr.write(`[lab test] ${strategy} showed no violation in run ${n}; running it again (a race depends on scheduling)\n`);
    r = row(await again(), strategy, workers);
  }
  return r;
}
