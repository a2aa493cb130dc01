// Campaign domain: the durable record, its limits, the activity window and, for a lottery, its
// prizes and the commitment to its secret seed. Pure, no I/O.
import { validationFailed, type Problem } from './errors.ts';
import { seedCommitment } from './lottery.ts';

export const MAX_STOCK = 2 ** 31 - 1;
export const ID_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const ID_REGEX = new RegExp(ID_PATTERN);

export type CampaignKind = 'coupon' | 'lottery';

/** A lottery prize: its own stock, issued count and weight. */
export interface Prize {
  id: string;
  name: string;
  stock: number;
  issued: number;
  weight: number;
}

export const MAX_PRIZES = 100;

export interface Campaign {
  id: string;
  kind: CampaignKind;
  name: string;
  strategy: string;
  stock: number;
  issued: number;
  perUserLimit: number;
  perUserDailyLimit: number | null;
  startsAt: number | null; // epoch ms
  endsAt: number | null; // epoch ms, exclusive
  createdAt: number; // epoch ms
  /** paused campaigns refuse claims (CAMPAIGN_NOT_ACTIVE) */
  paused: boolean;
  /** lottery: weight of drawing nothing */
  missWeight: number;
  /** lottery: the consolation prize given when no weighted prize can be had */
  fallbackPrizeId: string | null;
  /** lottery: SHA-256 of the secret seed, published at creation */
  seedCommitment: string | null;
  /** lottery: the prizes, sorted by id (empty for a coupon campaign); stock and issued of a
   * lottery campaign are their sums */
  prizes: Prize[];
}

export interface NewPrize {
  id: string;
  name: string;
  stock: number;
  weight: number;
}

export interface NewCampaign {
  id?: string;
  kind: CampaignKind;
  name: string;
  stock?: number;
  prizes?: NewPrize[];
  missWeight?: number;
  fallback?: string | null;
  perUserLimit?: number;
  perUserDailyLimit?: number | null;
  startsAt?: string | null;
  endsAt?: string | null;
  strategy?: string;
}

/** Checks what a schema cannot (cross-field rules, dates) and returns the record to insert. A
 * lottery needs `seedHex`, its secret seed (random bytes from the caller). The input is the body
 * of POST /v1/campaigns, so each problem's path names its field there (`body/prizes/0/id`). */
export function buildCampaign(input: NewCampaign, id: string, strategy: string, nowMs: number, seedHex?: string): Campaign {
  const problems: Problem[] = [];
  const problem = (field: string, message: string): void => {
    problems.push({ path: `body/${field}`, message });
  };
  const lottery = input.kind === 'lottery';
  let prizes: Prize[] = [];
  if (lottery) {
    if (input.stock !== undefined) problem('stock', 'a lottery has stock per prize: give "prizes" and leave out "stock"');
    if (!input.prizes || input.prizes.length === 0) problem('prizes', 'a lottery needs at least one prize in "prizes"');
    else {
      if (input.prizes.length > MAX_PRIZES) problem('prizes', `a lottery has at most ${MAX_PRIZES} prizes`);
      const seen = new Set<string>();
      input.prizes.forEach((p, i) => {
        if (!ID_REGEX.test(p.id)) problem(`prizes/${i}/id`, `prize id "${p.id}" must be 1-128 characters from [A-Za-z0-9_.:-]`);
        if (seen.has(p.id)) problem(`prizes/${i}/id`, `prize id "${p.id}" appears twice`);
        seen.add(p.id);
        if (!Number.isSafeInteger(p.stock) || p.stock < 0 || p.stock > MAX_STOCK) problem(`prizes/${i}/stock`, `prize ${p.id}: stock must be 0..${MAX_STOCK}`);
        if (!Number.isSafeInteger(p.weight) || p.weight < 0 || p.weight > MAX_STOCK) problem(`prizes/${i}/weight`, `prize ${p.id}: weight must be 0..${MAX_STOCK}`);
      });
      const total = input.prizes.reduce((a, p) => a + p.stock, 0);
      if (total > MAX_STOCK) problem('prizes', `the prizes' stock adds up to ${total}, above ${MAX_STOCK}`);
      prizes = input.prizes.map((p) => ({ id: p.id, name: p.name, stock: p.stock, issued: 0, weight: p.weight })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    }
    const fallback = input.fallback ?? null;
    if (fallback !== null && !prizes.some((p) => p.id === fallback)) problem('fallback', `fallback "${fallback}" must be the id of one of the prizes (the consolation prize, with its own stock)`);
  } else {
    const lotteryField = input.prizes !== undefined ? 'prizes' : input.missWeight !== undefined ? 'missWeight' : input.fallback !== undefined && input.fallback !== null ? 'fallback' : null;
    if (lotteryField !== null) problem(lotteryField, 'prizes, missWeight and fallback belong to a lottery: create it with "kind": "lottery"');
    if (input.stock === undefined) problem('stock', 'stock is required for a coupon campaign');
  }
  const startsAt = parseInstant(input.startsAt, 'startsAt', problem);
  const endsAt = parseInstant(input.endsAt, 'endsAt', problem);
  if (startsAt !== null && endsAt !== null && endsAt <= startsAt) problem('endsAt', 'endsAt must be after startsAt');
  const perUserLimit = input.perUserLimit ?? 1;
  const perUserDailyLimit = input.perUserDailyLimit ?? null;
  if (problems.length > 0) throw validationFailed(problems);
  if (lottery && seedHex === undefined) throw new Error('buildCampaign: a lottery needs its seed');
  return {
    id,
    kind: lottery ? 'lottery' : 'coupon',
    name: input.name,
    strategy,
    stock: lottery ? prizes.reduce((a, p) => a + p.stock, 0) : (input.stock ?? 0),
    issued: 0,
    perUserLimit,
    perUserDailyLimit,
    startsAt,
    endsAt,
    createdAt: nowMs,
    paused: false,
    missWeight: lottery ? (input.missWeight ?? 0) : 0,
    fallbackPrizeId: lottery ? (input.fallback ?? null) : null,
    seedCommitment: lottery && seedHex !== undefined ? seedCommitment(seedHex) : null,
    prizes,
  };
}

function parseInstant(value: string | null | undefined, field: string, problem: (field: string, message: string) => void): number | null {
  if (value === undefined || value === null) return null;
  // ISO-8601 with a date and an explicit zone, so the instant is unambiguous.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    problem(field, `${field} must be an ISO-8601 instant with a zone, e.g. 2026-11-22T10:00:00Z`);
    return null;
  }
  const ms = Date.parse(value);
  // Date.parse rolls impossible dates over (Feb 30 -> Mar 2); refuse those instead.
  const [y, mo, d, h, mi] = value.slice(0, 16).split(/[-T:]/).map(Number);
  const probe = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!));
  const real = probe.getUTCFullYear() === y && probe.getUTCMonth() === mo! - 1 && probe.getUTCDate() === d && probe.getUTCHours() === h && probe.getUTCMinutes() === mi;
  if (!Number.isFinite(ms) || !real) {
    problem(field, `${field} is not a valid date: ${value}`);
    return null;
  }
  return ms;
}

export function isActive(c: Pick<Campaign, 'startsAt' | 'endsAt' | 'paused'>, nowMs: number): boolean {
  if (c.paused) return false;
  if (c.startsAt !== null && nowMs < c.startsAt) return false;
  if (c.endsAt !== null && nowMs >= c.endsAt) return false;
  return true;
}

export function remaining(c: Pick<Campaign, 'stock' | 'issued'>): number {
  return c.stock - c.issued;
}

export interface PrizeView {
  id: string;
  name: string;
  stock: number;
  issued: number;
  remaining: number;
  weight: number;
}

export interface CampaignView {
  id: string;
  kind: CampaignKind;
  name: string;
  strategy: string;
  stock: number;
  issued: number;
  remaining: number;
  perUserLimit: number;
  perUserDailyLimit: number | null;
  startsAt: string | null;
  endsAt: string | null;
  createdAt: string;
  paused: boolean;
  prizes?: PrizeView[];
  missWeight?: number;
  fallback?: string | null;
  seedCommitment?: string;
}

/** The API view of a campaign (ISO dates, remaining; a lottery's prizes and seed commitment). */
export function campaignView(c: Campaign): CampaignView {
  return {
    id: c.id,
    kind: c.kind,
    name: c.name,
    strategy: c.strategy,
    stock: c.stock,
    issued: c.issued,
    remaining: remaining(c),
    perUserLimit: c.perUserLimit,
    perUserDailyLimit: c.perUserDailyLimit,
    startsAt: c.startsAt === null ? null : new Date(c.startsAt).toISOString(),
    endsAt: c.endsAt === null ? null : new Date(c.endsAt).toISOString(),
    createdAt: new Date(c.createdAt).toISOString(),
    paused: c.paused,
    ...(c.kind === 'lottery'
      ? {
          prizes: c.prizes.map((p) => ({ id: p.id, name: p.name, stock: p.stock, issued: p.issued, remaining: p.stock - p.issued, weight: p.weight })),
          missWeight: c.missWeight,
          fallback: c.fallbackPrizeId,
          seedCommitment: c.seedCommitment ?? '',
        }
      : {}),
  };
}
