// One-shot CLI commands (migrate, audit, campaign create/get/list/stock/pause/resume/reveal,
// claim proof), each on its own service.
import { campaignView, ID_REGEX, MAX_STOCK, type NewPrize } from '../core/campaign.ts';
import { AllotError } from '../core/errors.ts';
import { verifyDrawProof } from '../core/lottery.ts';
import { loadConfig } from '../service/config.ts';
import { AllotService } from '../service/service.ts';

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

async function withService<T>(o: DbFlags, fn: (s: AllotService) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env, overrides(o));
  const service = await AllotService.open({ config });
  try {
    return await fn(service);
  } finally {
    await service.close();
  }
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
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
  if (!report.ok) process.exitCode = 1;
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

/** Prints the proof and whether it verifies; exits 1 when it does not. */
export async function claimProof(claimId: string, o: DbFlags & { json?: boolean }): Promise<void> {
  const proof = await withService(o, (s) => s.drawProof(claimId));
  const check = verifyDrawProof(proof);
  print({ proof, verified: check.ok, ...(check.ok ? {} : { problems: check.problems }) });
  process.stderr.write(check.ok ? 'proof verified: the draw recomputes from the revealed seed\n' : `proof does NOT verify: ${check.problems.join('; ')}\n`);
  if (!check.ok) process.exitCode = 1;
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
