// One-shot CLI commands (migrate, audit, campaign create/get/list/stock/pause/resume/reveal,
// claim proof, payouts: fund, withdraw, balances, transfers, ledger audit), each on its own
// service.
import { campaignView, ID_REGEX, MAX_STOCK, type NewPrize } from '../core/campaign.ts';
import { AllotError, ERRORS, type ErrorCode } from '../core/errors.ts';
import { IDEMPOTENCY_KEY_PATTERN } from '../core/idempotency.ts';
import { verifyDrawProof } from '../core/lottery.ts';
import { ASSET_REGEX, DESTINATION_REGEX, parseAmount, transferView, type Resolution, type TransferState } from '../core/payout.ts';
import { loadConfig, type Config } from '../service/config.ts';
import { AllotService } from '../service/service.ts';
import { InvariantViolation } from './exit-codes.ts';

export interface DbFlags {
  databaseUrl?: string;
  dataDir?: string;
}

/** CLI flags as config overrides (flags win over the environment). */
export function overrides(o: DbFlags & { port?: string; host?: string; allowUnsafeStrategies?: boolean }): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.databaseUrl !== undefined) out.DATABASE_URL = o.databaseUrl;
  if (o.dataDir !== undefined) out.ALLOT_DATA_DIR = o.dataDir;
  if (o.port !== undefined) out.PORT = o.port;
  if (o.host !== undefined) out.HOST = o.host;
  if (o.allowUnsafeStrategies === true) out.ALLOT_ALLOW_UNSAFE_STRATEGIES = '1';
  return out;
}

/** How the commands open and close the service and where they write (a test substitutes them
 * to run the commands in-process on one in-memory database). */
export const cliEnv = {
  // A one-shot command runs no payout sweep and no scheduled key purge (that is the service's
  // job); an order it receives itself is still executed, and waited for, by `transfers send`.
  open: (config: Config): Promise<AllotService> => AllotService.open({ config, payouts: { sweepIntervalMs: 0 }, keyPurge: { intervalMs: 0 } }),
  close: (service: AllotService): Promise<void> => service.close(),
  stdout: (text: string): void => void process.stdout.write(text),
  stderr: (text: string): void => void process.stderr.write(text),
};

async function withService<T>(o: DbFlags, fn: (s: AllotService) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env, overrides(o));
  const service = await cliEnv.open(config);
  try {
    return await fn(service);
  } finally {
    await cliEnv.close(service);
  }
}

function print(value: unknown): void {
  cliEnv.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

function wholeNumber(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,10}$/.test(raw)) throw new AllotError('VALIDATION_FAILED', `${name} must be a whole number, got "${raw}"`);
  return Number(raw);
}

export async function migrateCommand(o: DbFlags): Promise<void> {
  const applied = await withService(o, async (s) => s.migrations.applied);
  process.stdout.write(applied.length === 0 ? 'schema is up to date\n' : `applied ${applied.length} migration(s): ${applied.join(', ')}\n`);
}

export async function auditCommand(id: string, o: DbFlags & { json?: boolean }): Promise<void> {
  const report = await withService(o, (s) => s.audit(id));
  if (o.json) print(report);
  else {
    for (const c of report.checks) {
      const { name, ok, ...details } = c;
      process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${name} ${JSON.stringify(details)}\n`);
    }
    process.stdout.write(report.ok ? 'audit passed\n' : 'audit FAILED\n');
  }
  if (!report.ok) throw new InvariantViolation(`audit of ${id} FAILED: ${failedChecks(report.checks)}`);
}

function failedChecks(checks: Array<{ name: string; ok: boolean; asset?: string }>): string {
  const failed = checks.filter((c) => !c.ok).map((c) => `${c.name}${c.asset ? ` [${c.asset}]` : ''}`);
  return `${failed.length} of ${checks.length} check(s) failed: ${failed.join(', ')}`;
}

/** "--prize ID:NAME:STOCK:WEIGHT" -> a prize; the name may itself contain ":". */
export function parsePrize(raw: string): NewPrize {
  const parts = raw.split(':');
  const bad = (why: string) => new AllotError('VALIDATION_FAILED', `--prize must look like ID:NAME:STOCK:WEIGHT (e.g. p1:Phone:3:1), got "${raw}": ${why}`);
  if (parts.length < 4) throw bad('expected 4 fields separated by ":"');
  const id = parts[0]!;
  const weightRaw = parts[parts.length - 1]!;
  const stockRaw = parts[parts.length - 2]!;
  const name = parts.slice(1, -2).join(':');
  if (!ID_REGEX.test(id)) throw bad('ID must be 1-128 characters from [A-Za-z0-9_.-]');
  if (name.length === 0 || name.length > 200) throw bad('NAME must be 1-200 characters');
  if (!/^\d{1,10}$/.test(stockRaw) || Number(stockRaw) > MAX_STOCK) throw bad(`STOCK must be a whole number from 0 to ${MAX_STOCK}`);
  if (!/^\d{1,10}$/.test(weightRaw) || Number(weightRaw) > MAX_STOCK) throw bad(`WEIGHT must be a whole number from 0 to ${MAX_STOCK}`);
  return { id, name, stock: Number(stockRaw), weight: Number(weightRaw) };
}

export async function campaignCreate(o: DbFlags & Record<string, string | undefined> & { prize?: string[] }): Promise<void> {
  const kind = o.kind ?? 'coupon';
  if (kind !== 'coupon' && kind !== 'lottery') throw new AllotError('VALIDATION_FAILED', `--kind must be coupon or lottery, got "${kind}"`);
  const stock = wholeNumber('--stock', o.stock);
  const perUserLimit = wholeNumber('--per-user-limit', o.perUserLimit);
  const perUserDailyLimit = wholeNumber('--per-user-daily-limit', o.perUserDailyLimit);
  const missWeight = wholeNumber('--miss-weight', o.missWeight);
  if (stock !== undefined && stock > MAX_STOCK) throw new AllotError('VALIDATION_FAILED', `--stock must be at most ${MAX_STOCK}`);
  if (missWeight !== undefined && missWeight > MAX_STOCK) throw new AllotError('VALIDATION_FAILED', `--miss-weight must be at most ${MAX_STOCK}`);
  if (perUserLimit === 0 || perUserDailyLimit === 0) throw new AllotError('VALIDATION_FAILED', 'per-user limits must be at least 1');
  const prizes = (o.prize ?? []).map(parsePrize);
  if (kind === 'coupon') {
    if (stock === undefined) throw new AllotError('VALIDATION_FAILED', '--stock is required for a coupon campaign');
    if (prizes.length > 0 || missWeight !== undefined || o.fallback !== undefined) {
      throw new AllotError('VALIDATION_FAILED', '--prize, --miss-weight and --fallback belong to a lottery: add --kind lottery');
    }
  } else {
    if (stock !== undefined) throw new AllotError('VALIDATION_FAILED', 'a lottery has stock per prize: use --prize ID:NAME:STOCK:WEIGHT instead of --stock');
    if (prizes.length === 0) throw new AllotError('VALIDATION_FAILED', 'a lottery needs at least one --prize ID:NAME:STOCK:WEIGHT');
  }
  const c = await withService(o, (s) =>
    s.createCampaign({
      kind,
      name: o.name ?? '',
      ...(kind === 'coupon' ? { stock } : { prizes }),
      ...(missWeight !== undefined ? { missWeight } : {}),
      ...(o.fallback !== undefined ? { fallback: o.fallback } : {}),
      ...(o.id !== undefined ? { id: o.id } : {}),
      ...(perUserLimit !== undefined ? { perUserLimit } : {}),
      ...(perUserDailyLimit !== undefined ? { perUserDailyLimit } : {}),
      ...(o.startsAt !== undefined ? { startsAt: o.startsAt } : {}),
      ...(o.endsAt !== undefined ? { endsAt: o.endsAt } : {}),
      ...(o.strategy !== undefined ? { strategy: o.strategy } : {}),
    }),
  );
  print(campaignView(c));
}

export async function campaignStock(id: string, o: DbFlags & { add?: string; prize?: string }): Promise<void> {
  const add = wholeNumber('--add', o.add);
  if (add === undefined) throw new AllotError('VALIDATION_FAILED', '--add is required');
  if (add < 1 || add > MAX_STOCK) throw new AllotError('VALIDATION_FAILED', `--add must be from 1 to ${MAX_STOCK}`);
  print(campaignView(await withService(o, (s) => s.addStock(id, { prizeId: o.prize, add }))));
}

export async function campaignPause(id: string, paused: boolean, o: DbFlags): Promise<void> {
  print(campaignView(await withService(o, (s) => s.setPaused(id, paused))));
}

export async function campaignReveal(id: string, o: DbFlags): Promise<void> {
  print(await withService(o, (s) => s.revealSeed(id)));
}

/** Prints the proof and whether it verifies; exits 4 (InvariantViolation) when it does not. */
export async function claimProof(claimId: string, o: DbFlags & { json?: boolean }): Promise<void> {
  const proof = await withService(o, (s) => s.drawProof(claimId));
  const check = verifyDrawProof(proof);
  print({ proof, verified: check.ok, ...(check.ok ? {} : { problems: check.problems }) });
  if (!check.ok) throw new InvariantViolation(`proof does NOT verify: ${check.problems.join('; ')}`);
  process.stderr.write('proof verified: the draw recomputes from the revealed seed\n');
}

export async function campaignGet(id: string, o: DbFlags): Promise<void> {
  print(campaignView(await withService(o, (s) => s.getCampaign(id))));
}

export async function campaignList(o: DbFlags & { limit: string; cursor?: string }): Promise<void> {
  const limit = wholeNumber('--limit', o.limit) ?? 100;
  if (limit < 1 || limit > 1000) throw new AllotError('VALIDATION_FAILED', '--limit must be from 1 to 1000');
  const page = await withService(o, (s) => s.listCampaigns(limit, o.cursor ?? null));
  print({ campaigns: page.items.map(campaignView), nextCursor: page.nextCursor });
}

/** "36h", "7d", "90m" -> ms. */
export function parseAge(raw: string): number {
  const m = /^(\d{1,6})(m|h|d)$/.exec(raw);
  if (!m) throw new AllotError('VALIDATION_FAILED', `--older-than must look like 90m, 36h or 7d, got "${raw}"`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
}

export async function keysPurge(o: DbFlags & { olderThan: string }): Promise<void> {
  const age = parseAge(o.olderThan);
  const deleted = await withService(o, (s) =>
    s.purgeIdempotencyKeys(age, (n) => process.stderr.write(`\rdeleted ${n} key(s)…`)),
  );
  process.stderr.write('\n');
  process.stdout.write(`deleted ${deleted} idempotency key(s) older than ${o.olderThan}\n`);
}

// ---- payouts ------------------------------------------------------------------------------

/** Ids, assets and destinations as the HTTP schemas check them (the service trusts its callers). */
function checked(name: string, raw: string | undefined, re: RegExp, what: string): string {
  if (raw === undefined || !re.test(raw)) throw new AllotError('VALIDATION_FAILED', `${name} must be ${what}, got ${JSON.stringify(raw ?? '')}`);
  return raw;
}
const anId = (name: string, raw: string | undefined) => checked(name, raw, ID_REGEX, '1-128 characters from [A-Za-z0-9_.:-]');
const anAsset = (raw: string | undefined) => checked('--asset', raw, ASSET_REGEX, 'an asset code of 1-32 characters from [A-Z0-9_.-] (upper case), such as CNY');
const NOTE_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,1000}$';
const NOTE_REGEX = new RegExp(NOTE_PATTERN);
const anAmount = (raw: string | undefined) => parseAmount(raw ?? '', '--amount');

/** An error body answered by the service (a withdrawal's refusal) as the CLI's error. */
function failure(body: unknown): AllotError {
  const e = (body as { error?: { code?: string; message?: string } }).error ?? {};
  const code = (e.code && e.code in ERRORS ? e.code : 'INTERNAL') as ErrorCode;
  const { code: _c, message, ...details } = e as Record<string, unknown>;
  return new AllotError(code, typeof message === 'string' ? message : undefined, details);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export async function fundCommand(o: DbFlags & { fundingId?: string; user?: string; asset?: string; amount?: string }): Promise<void> {
  const input = { fundingId: anId('--funding-id', o.fundingId), userId: anId('--user', o.user), asset: anAsset(o.asset), amount: anAmount(o.amount) };
  const out = await withService(o, (s) => s.payouts.fund(input));
  if (out.replayed) cliEnv.stderr(`funding ${input.fundingId} already existed with this body: nothing was changed\n`);
  print(out.body);
}

export async function withdrawCommand(o: DbFlags & { user?: string; asset?: string; amount?: string; key?: string }): Promise<void> {
  const userId = anId('--user', o.user);
  const asset = anAsset(o.asset);
  const amount = anAmount(o.amount);
  const key = checked('--key', o.key, new RegExp(IDEMPOTENCY_KEY_PATTERN), '1-255 printable ASCII characters');
  const out = await withService(o, (s) => s.payouts.withdraw(userId, asset, amount, key));
  if (out.status >= 400) throw failure(out.body);
  if (out.replayed) cliEnv.stderr(`key ${JSON.stringify(key)} was already used for this withdrawal: its first answer, nothing debited again\n`);
  print(out.body);
}

export async function balancesCommand(userId: string, o: DbFlags & { json?: boolean }): Promise<void> {
  anId('<userId>', userId);
  const balances = await withService(o, (s) => s.payouts.balanceViews(userId));
  if (o.json) return print({ balances });
  if (balances.length === 0) {
    cliEnv.stdout(`no balances for ${userId}\n`);
    return;
  }
  cliEnv.stdout(table(['ASSET', 'AVAILABLE', 'HELD', 'PAID_OUT'], balances.map((b) => [b.asset, String(b.available), String(b.held), String(b.paidOut)])));
}

export async function transferSend(o: DbFlags & { orderId?: string; user?: string; asset?: string; amount?: string; destination?: string }): Promise<void> {
  const input = {
    orderId: anId('--order-id', o.orderId),
    userId: anId('--user', o.user),
    asset: anAsset(o.asset),
    amount: anAmount(o.amount),
    destination: checked('--destination', o.destination, DESTINATION_REGEX, '1-256 characters without control characters'),
  };
  const transfer = await withService(o, async (s) => {
    const out = await s.payouts.transfer(input);
    if (out.replayed) cliEnv.stderr(`order ${input.orderId} already existed with these fields: it was not executed again\n`);
    // Wait for this process's rail call (bounded by the rail timeout), then show where it stands.
    await s.payouts.idle();
    return transferView(await s.payouts.getTransfer(input.orderId));
  });
  print({ transfer });
}

export async function transferGet(orderId: string, o: DbFlags): Promise<void> {
  anId('<orderId>', orderId);
  print({ transfer: transferView(await withService(o, (s) => s.payouts.getTransfer(orderId))) });
}

export async function transferList(o: DbFlags & { state?: TransferState; limit: string; cursor?: string; json?: boolean }): Promise<void> {
  const limit = wholeNumber('--limit', o.limit) ?? 100;
  if (limit < 1 || limit > 1000) throw new AllotError('VALIDATION_FAILED', '--limit must be from 1 to 1000');
  let after: string | null = null;
  if (o.cursor !== undefined) {
    after = Buffer.from(o.cursor, 'base64url').toString('utf8');
    if (!/^[A-Za-z0-9_-]{1,200}$/.test(o.cursor) || !ID_REGEX.test(after)) throw new AllotError('VALIDATION_FAILED', '--cursor is not a nextCursor this command printed');
  }
  const page = await withService(o, (s) => s.payouts.listTransfers(o.state ?? null, limit, after));
  const transfers = page.items.map(transferView);
  if (o.json) return print({ transfers, nextCursor: page.nextCursor });
  if (transfers.length === 0) cliEnv.stdout(`no transfer orders${o.state ? ` in state ${o.state}` : ''}\n`);
  else {
    cliEnv.stdout(table(
      ['ORDER_ID', 'STATE', 'USER', 'ASSET', 'AMOUNT', 'ATTEMPTS', 'UPDATED', 'REASON / RESOLUTION'],
      transfers.map((t) => [t.orderId, t.state, t.userId, t.asset, String(t.amount), String(t.attempts), t.updatedAt,
        t.resolution ? `resolved ${t.resolution.outcome}: ${t.resolution.note}` : (t.reason ?? '')]),
    ));
  }
  if (page.nextCursor) cliEnv.stdout(`more: --cursor ${page.nextCursor}\n`);
}

export async function transferResolve(orderId: string, o: DbFlags & { outcome: Resolution; note?: string }): Promise<void> {
  anId('<orderId>', orderId);
  const note = o.note ?? '';
  if (!NOTE_REGEX.test(note)) throw new AllotError('VALIDATION_FAILED', '--note must be 1-1000 characters without control characters');
  const out = await withService(o, (s) => s.payouts.resolve(orderId, o.outcome, note));
  if (out.replayed) cliEnv.stderr(`order ${orderId} was already resolved as ${o.outcome}: nothing was applied again\n`);
  print({ transfer: transferView(out.transfer) });
}

export async function ledgerAudit(o: DbFlags & { json?: boolean }): Promise<void> {
  const report = await withService(o, (s) => s.payouts.audit());
  if (o.json) print(report);
  else {
    for (const c of report.checks) {
      const { name, ok, asset, ...details } = c;
      cliEnv.stdout(`${ok ? 'ok  ' : 'FAIL'} ${name}${asset ? ` [${asset}]` : ''} ${JSON.stringify(details)}\n`);
    }
    cliEnv.stdout(report.ok ? 'ledger audit passed\n' : 'ledger audit FAILED\n');
  }
  if (!report.ok) throw new InvariantViolation(`ledger audit FAILED: ${failedChecks(report.checks)}`);
}
