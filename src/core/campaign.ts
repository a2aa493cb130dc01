// Campaign domain: the durable record, its limits and the activity window. Pure, no I/O.
import { AllotError } from './errors.ts';

export const MAX_STOCK = 2 ** 31 - 1;
export const ID_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const ID_REGEX = new RegExp(ID_PATTERN);

export type CampaignKind = 'coupon' | 'lottery';

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
}

export interface NewCampaign {
  id?: string;
  kind: CampaignKind;
  name: string;
  stock?: number;
  prizes?: unknown[];
  missWeight?: number;
  fallback?: string | null;
  perUserLimit?: number;
  perUserDailyLimit?: number | null;
  startsAt?: string | null;
  endsAt?: string | null;
  strategy?: string;
}

/** Checks what a schema cannot (cross-field rules, dates) and returns the record to insert. */
export function buildCampaign(input: NewCampaign, id: string, strategy: string, nowMs: number): Campaign {
  const problems: string[] = [];
  if (input.kind === 'lottery' || input.prizes !== undefined || input.missWeight !== undefined || (input.fallback !== undefined && input.fallback !== null)) {
    problems.push('lottery campaigns (kind "lottery", prizes, missWeight, fallback) are not available in this version yet; create a "coupon" campaign');
  }
  if (input.stock === undefined) problems.push('stock is required for a coupon campaign');
  const startsAt = parseInstant(input.startsAt, 'startsAt', problems);
  const endsAt = parseInstant(input.endsAt, 'endsAt', problems);
  if (startsAt !== null && endsAt !== null && endsAt <= startsAt) problems.push('endsAt must be after startsAt');
  const perUserLimit = input.perUserLimit ?? 1;
  const perUserDailyLimit = input.perUserDailyLimit ?? null;
  if (problems.length > 0) {
    throw new AllotError('VALIDATION_FAILED', problems.join('; '), { problems });
  }
  return {
    id,
    kind: 'coupon',
    name: input.name,
    strategy,
    stock: input.stock ?? 0,
    issued: 0,
    perUserLimit,
    perUserDailyLimit,
    startsAt,
    endsAt,
    createdAt: nowMs,
  };
}

function parseInstant(value: string | null | undefined, field: string, problems: string[]): number | null {
  if (value === undefined || value === null) return null;
  // ISO-8601 with a date and an explicit zone, so the instant is unambiguous.
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(value)) {
    problems.push(`${field} must be an ISO-8601 instant with a zone, e.g. 2026-11-22T10:00:00Z`);
    return null;
  }
  const ms = Date.parse(value);
  // Date.parse rolls impossible dates over (Feb 30 -> Mar 2); refuse those instead.
  const [y, mo, d, h, mi] = value.slice(0, 16).split(/[-T:]/).map(Number);
  const probe = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!));
  const real = probe.getUTCFullYear() === y && probe.getUTCMonth() === mo! - 1 && probe.getUTCDate() === d && probe.getUTCHours() === h && probe.getUTCMinutes() === mi;
  if (!Number.isFinite(ms) || !real) {
    problems.push(`${field} is not a valid date: ${value}`);
    return null;
  }
  return ms;
}

export function isActive(c: Pick<Campaign, 'startsAt' | 'endsAt'>, nowMs: number): boolean {
  if (c.startsAt !== null && nowMs < c.startsAt) return false;
  if (c.endsAt !== null && nowMs >= c.endsAt) return false;
  return true;
}

export function remaining(c: Pick<Campaign, 'stock' | 'issued'>): number {
  return c.stock - c.issued;
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
}

/** The API view of a campaign (ISO dates, remaining). */
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
  };
}
