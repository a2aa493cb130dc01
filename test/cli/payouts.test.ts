// The payout commands: fund, withdraw, balances, transfers send/get/list/resolve and ledger
// audit. In-process on one in-memory service (cliEnv substituted: the commands' own code, their
// output and errors), plus two real `node bin/allot.js` processes (each costs seconds): one for
// the flag parsing (choices) and one to show that a command that opens the service (and its
// payout sweep) closes it and exits.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isAllotError } from '../../src/core/errors.ts';
import {
  balancesCommand, cliEnv, fundCommand, ledgerAudit, transferGet, transferList, transferResolve, transferSend, withdrawCommand,
} from '../../src/cli/commands.ts';
import { exitCodeFor } from '../../src/cli/exit-codes.ts';
import { InProcessSimRail } from '../../src/rail/in-process.ts';
import { AllotService } from '../../src/service/service.ts';
import { runCli, type CliResult } from '../helpers/cli.ts';

const DB = { databaseUrl: 'memory://' };

describe('payout commands (in-process)', () => {
  const saved = { ...cliEnv };
  const rail = new InProcessSimRail();
  let service: AllotService;
  let out = '';
  let err = '';

  /** Runs a command and returns what it wrote; exitCode is the process's, reset after. */
  async function run(fn: () => Promise<void>): Promise<{ stdout: string; stderr: string; exitCode: number | string | undefined }> {
    out = '';
    err = '';
    process.exitCode = undefined;
    try {
      await fn();
      return { stdout: out, stderr: err, exitCode: process.exitCode };
    } finally {
      process.exitCode = undefined;
    }
  }
  const json = async (fn: () => Promise<void>) => JSON.parse((await run(fn)).stdout) as Record<string, Record<string, unknown>>;
  const rejects = (fn: () => Promise<void>, code: string, message?: RegExp) =>
    assert.rejects(fn, (e: unknown) => isAllotError(e) && e.code === code && (message === undefined || message.test(e.message)));

  before(async () => {
    service = await AllotService.open({
      config: { databaseUrl: 'memory://', dbPoolSize: 4, dbTimeoutMs: 5000, defaultStrategy: 'conditional', allowUnsafeStrategies: false },
      rail,
      payouts: { railTimeoutMs: 1000 },
    });
    cliEnv.open = async () => service;
    cliEnv.close = async () => undefined;
    cliEnv.stdout = (s) => void (out += s);
    cliEnv.stderr = (s) => void (err += s);
  });
  after(async () => {
    Object.assign(cliEnv, saved);
    await service?.close();
  });

  test('fund, withdraw under a key, balances as a table and as JSON', async () => {
    const f = await json(() => fundCommand({ ...DB, fundingId: 'f-1', user: 'u-42', asset: 'CNY', amount: '500' }));
    assert.deepEqual({ ...f.funding, createdAt: 'x' }, { id: 'f-1', userId: 'u-42', asset: 'CNY', amount: 500, createdAt: 'x' });
    const again = await run(() => fundCommand({ ...DB, fundingId: 'f-1', user: 'u-42', asset: 'CNY', amount: '500' }));
    assert.match(again.stderr, /already existed/);
    await rejects(() => fundCommand({ ...DB, fundingId: 'f-1', user: 'u-42', asset: 'CNY', amount: '501' }), 'FUNDING_EXISTS');

    const w = await json(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'CNY', amount: '200', key: 'k-1' }));
    assert.equal(w.withdrawal!.amount, 200);
    assert.equal(w.withdrawal!.state, 'succeeded');
    const replay = await run(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'CNY', amount: '200', key: 'k-1' }));
    assert.equal((JSON.parse(replay.stdout) as typeof w).withdrawal!.id, w.withdrawal!.id);
    assert.match(replay.stderr, /already used/);
    await rejects(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'CNY', amount: '250', key: 'k-1' }), 'IDEMPOTENCY_KEY_REUSED');
    await rejects(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'CNY', amount: '301', key: 'k-2' }), 'INSUFFICIENT_FUNDS');
    await rejects(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'XYZ', amount: '1', key: 'k-3' }), 'ASSET_NOT_FOUND');

    const table = await run(() => balancesCommand('u-42', { ...DB }));
    assert.match(table.stdout, /^ASSET\s+AVAILABLE\s+HELD\s+PAID_OUT$/m);
    assert.match(table.stdout, /^CNY\s+300\s+0\s+200$/m);
    assert.deepEqual(await json(() => balancesCommand('u-42', { ...DB, json: true })), { balances: [{ asset: 'CNY', available: 300, held: 0, paidOut: 200 }] });
    assert.match((await run(() => balancesCommand('nobody', { ...DB }))).stdout, /no balances for nobody/);
  });

  test('flags are checked like the HTTP schemas before anything is written', async () => {
    const before = await service.payouts.audit();
    await rejects(() => fundCommand({ ...DB, fundingId: 'f-2', user: 'u-42', asset: 'CNY', amount: '1e3' }), 'VALIDATION_FAILED', /--amount/);
    await rejects(() => fundCommand({ ...DB, fundingId: 'f-2', user: 'u-42', asset: 'CNY', amount: '9223372036854775808' }), 'VALIDATION_FAILED', /9223372036854775807/);
    await rejects(() => fundCommand({ ...DB, fundingId: 'f-2', user: 'u-42', asset: 'cny', amount: '5' }), 'VALIDATION_FAILED', /--asset/);
    await rejects(() => fundCommand({ ...DB, fundingId: 'f 2', user: 'u-42', asset: 'CNY', amount: '5' }), 'VALIDATION_FAILED', /--funding-id/);
    await rejects(() => withdrawCommand({ ...DB, user: 'u-42', asset: 'CNY', amount: '5', key: 'a\tb' }), 'VALIDATION_FAILED', /--key/);
    await rejects(() => transferSend({ ...DB, orderId: 'o-x', user: 'u-42', asset: 'CNY', amount: '5', destination: 'a\nb' }), 'VALIDATION_FAILED', /--destination/);
    await rejects(() => transferResolve('o-x', { ...DB, outcome: 'failed', note: '' }), 'VALIDATION_FAILED', /--note/);
    await rejects(() => transferResolve('o-x', { ...DB, outcome: 'failed', note: 'n'.repeat(1001) }), 'VALIDATION_FAILED', /--note/);
    await rejects(() => transferList({ ...DB, limit: '0' }), 'VALIDATION_FAILED', /--limit/);
    await rejects(() => transferList({ ...DB, limit: '10', cursor: '!!' }), 'VALIDATION_FAILED', /--cursor/);
    assert.deepEqual(await service.payouts.audit(), before);
    assert.deepEqual(await service.payouts.balanceViews('u-42'), [{ asset: 'CNY', available: 300, held: 0, paidOut: 200 }]);
  });

  test('transfers send waits for the rail and shows the outcome; get, list and a refused resolve', async () => {
    const t = await json(() => transferSend({ ...DB, orderId: 'o-1', user: 'u-42', asset: 'CNY', amount: '100', destination: 'addr-1' }));
    assert.equal(t.transfer!.state, 'succeeded');
    assert.equal(t.transfer!.attempts, 1);
    const repeat = await run(() => transferSend({ ...DB, orderId: 'o-1', user: 'u-42', asset: 'CNY', amount: '100', destination: 'addr-1' }));
    assert.match(repeat.stderr, /not executed again/);
    assert.equal(rail.core.stats().executed, 1);
    await rejects(() => transferSend({ ...DB, orderId: 'o-1', user: 'u-42', asset: 'CNY', amount: '101', destination: 'addr-1' }), 'ORDER_EXISTS');
    assert.equal((await json(() => transferGet('o-1', { ...DB }))).transfer!.railRef, t.transfer!.railRef);
    await rejects(() => transferGet('nope', { ...DB }), 'ORDER_NOT_FOUND');

    const list = await run(() => transferList({ ...DB, state: 'succeeded', limit: '100' }));
    assert.match(list.stdout, /^ORDER_ID\s+STATE\s+USER\s+ASSET\s+AMOUNT\s+ATTEMPTS\s+UPDATED/m);
    assert.match(list.stdout, /^o-1\s+succeeded\s+u-42\s+CNY\s+100\s+1\s+\d{4}-/m);
    assert.match((await run(() => transferList({ ...DB, state: 'unknown', limit: '100' }))).stdout, /no transfer orders in state unknown/);
    const asJson = await json(() => transferList({ ...DB, limit: '100', json: true }));
    assert.deepEqual((asJson.transfers as unknown as Array<{ orderId: string }>).map((x) => x.orderId), ['o-1']);
    assert.equal(asJson.nextCursor, null);

    await rejects(() => transferResolve('o-1', { ...DB, outcome: 'failed', note: 'checked' }), 'ORDER_NOT_UNKNOWN');
    assert.deepEqual(await service.payouts.balanceViews('u-42'), [{ asset: 'CNY', available: 200, held: 0, paidOut: 300 }]);
  });

  test('an unknown order: listed, resolved once (a repeat says so), then ledger audit passes', async () => {
    rail.core.configure({ timeoutRate: 1 });
    try {
      const t = await json(() => transferSend({ ...DB, orderId: 'o-2', user: 'u-42', asset: 'CNY', amount: '50', destination: 'addr-2' }));
      assert.equal(t.transfer!.state, 'unknown');
    } finally {
      rail.core.configure({ timeoutRate: 0 });
    }
    assert.match((await run(() => transferList({ ...DB, state: 'unknown', limit: '100' }))).stdout, /^o-2\s+unknown\s+u-42\s+CNY\s+50\s+1\s/m);
    assert.deepEqual(await service.payouts.balanceViews('u-42'), [{ asset: 'CNY', available: 150, held: 50, paidOut: 300 }]);
    const r = await json(() => transferResolve('o-2', { ...DB, outcome: 'succeeded', note: 'the bank confirmed it' }));
    assert.equal(r.transfer!.state, 'succeeded');
    const again = await run(() => transferResolve('o-2', { ...DB, outcome: 'succeeded', note: 'again' }));
    assert.match(again.stderr, /already resolved as succeeded/);
    assert.deepEqual(await service.payouts.balanceViews('u-42'), [{ asset: 'CNY', available: 150, held: 0, paidOut: 350 }]);
    assert.match((await run(() => transferList({ ...DB, limit: '100' }))).stdout, /^o-2\s+succeeded\s.*resolved succeeded: the bank confirmed it$/m);

    const audit = await run(() => ledgerAudit({ ...DB }));
    assert.equal(audit.exitCode, undefined);
    assert.match(audit.stdout, /^ok\s+conserved \[CNY\]/m);
    assert.match(audit.stdout, /^ledger audit passed$/m);
    assert.doesNotMatch(audit.stdout, /FAIL/);
    assert.equal((await json(() => ledgerAudit({ ...DB, json: true }))).ok as unknown, true);
  });

  test('ledger audit exits 4 (InvariantViolation) when a check fails, after printing the report', async () => {
    const real = service.payouts.audit.bind(service.payouts);
    service.payouts.audit = async () => ({ ok: false, checks: [{ name: 'conserved', asset: 'CNY', ok: false, available: '1' }] });
    try {
      out = '';
      await assert.rejects(() => ledgerAudit({ ...DB }), (e: unknown) => exitCodeFor(e) === 4 && /ledger audit FAILED: 1 of 1 check\(s\) failed: conserved \[CNY\]/.test((e as Error).message));
      assert.match(out, /^FAIL conserved \[CNY\]/m);
      assert.match(out, /^ledger audit FAILED$/m);
    } finally {
      service.payouts.audit = real;
    }
  });
});

const allot = (...args: string[]): Promise<CliResult> => runCli(args);

describe('payout commands (real processes)', () => {
  test('a command that opens the service and its payout sweep closes it and exits', async () => {
    const audit = await allot('ledger', 'audit', '--database-url', 'memory://');
    assert.equal(audit.code, 0, audit.stderr);
    assert.match(audit.stdout, /ledger audit passed/);
  });

  test('--outcome takes only its choices (checked before the database is opened)', async () => {
    const badOutcome = await allot('transfers', 'resolve', 'o-1', '--outcome', 'maybe');
    assert.notEqual(badOutcome.code, 0);
    assert.match(badOutcome.stderr, /Allowed choices are succeeded, failed/);
  });
});
