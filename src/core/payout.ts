// Payout domain: amounts (64-bit minor units as bigint, never a float), assets, fundings,
// withdrawals, transfer orders and their states, and the field comparison that makes an order
// id unique forever (TigerBeetle's `exists` / `exists_with_different_*`). Pure, no I/O.
import { AllotError } from './errors.ts';

/** The largest amount and balance: a signed 64-bit integer. */
export const MAX_AMOUNT = 2n ** 63n - 1n;
/** The largest amount a JSON number carries exactly; larger ones travel as decimal strings. */
export const MAX_JSON_AMOUNT = BigInt(Number.MAX_SAFE_INTEGER);
export const AMOUNT_STRING_PATTERN = '^[1-9][0-9]{0,18}$';
export const ASSET_PATTERN = '^[A-Z0-9][A-Z0-9_.-]{0,31}$';
export const ASSET_REGEX = new RegExp(ASSET_PATTERN);
/** A destination (an address, an account number): printable text, no control characters. */
export const DESTINATION_PATTERN = '^[^\\u0000-\\u001f\\u007f]{1,256}$';
export const DESTINATION_REGEX = new RegExp(DESTINATION_PATTERN);

/** An amount from JSON: a whole number from 1 to 2^53-1, or a decimal string from "1" to
 * "9223372036854775807". Anything else (zero, negative, fractional, exponent, a number too
 * large to be exact) is VALIDATION_FAILED naming `field`. */
export function parseAmount(value: unknown, field = 'amount'): bigint {
  const bad = (why: string): AllotError => new AllotError('VALIDATION_FAILED', `${field} ${why}`, { field });
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw bad('is too large: amounts are at most 9223372036854775807 (2^63-1), sent as a decimal string above 2^53-1');
    if (!Number.isInteger(value)) throw bad('must be a whole number of minor units (no fractions)');
    if (value < 1) throw bad('must be at least 1');
    if (!Number.isSafeInteger(value)) throw bad('is larger than 2^53-1, where a JSON number stops being exact: send it as a decimal string, e.g. "9007199254740993"');
    return BigInt(value);
  }
  if (typeof value === 'string') {
    if (!/^[0-9]+$/.test(value)) throw bad('must be a whole number of minor units, as a JSON number or a decimal string of digits');
    if (/^0+$/.test(value)) throw bad('must be at least 1');
    if (/^0/.test(value)) throw bad('must not have leading zeros');
    if (value.length > 19 || BigInt(value) > MAX_AMOUNT) throw bad('must be at most 9223372036854775807 (2^63-1)');
    return BigInt(value);
  }
  throw bad('must be a whole number of minor units, as a JSON number or a decimal string');
}

/** An amount for JSON: a number while exact, a decimal string above 2^53-1. */
export function amountJson(v: bigint): number | string {
  return v <= MAX_JSON_AMOUNT && v >= -MAX_JSON_AMOUNT ? Number(v) : v.toString();
}

export interface Funding {
  id: string;
  userId: string;
  asset: string;
  amount: bigint;
  createdAt: number;
}

export type WithdrawalState = 'succeeded';

export interface Withdrawal {
  id: string;
  userId: string;
  asset: string;
  amount: bigint;
  state: WithdrawalState;
  idempotencyKey: string;
  createdAt: number;
}

export const TRANSFER_STATES = ['received', 'executing', 'succeeded', 'failed', 'unknown'] as const;
export type TransferState = (typeof TRANSFER_STATES)[number];
export type Resolution = 'succeeded' | 'failed';

export interface Transfer {
  orderId: string;
  userId: string;
  asset: string;
  amount: bigint;
  destination: string;
  state: TransferState;
  /** how many times the order was sent to the rail (0 until it is; 1 in every normal run) */
  attempts: number;
  attemptId: string | null;
  /** while `executing`: until when its executor owns it; after that a recovery asks the rail */
  leaseUntil: number | null;
  railRef: string | null;
  /** why it failed, or why its outcome is unknown */
  reason: string | null;
  resolution: { outcome: Resolution; note: string; at: number } | null;
  createdAt: number;
  updatedAt: number;
}

export interface Balance {
  asset: string;
  available: bigint;
  held: bigint;
  paidOut: bigint;
}

/** The fields of a transfer order that its id is bound to. */
export const ORDER_FIELDS = ['userId', 'asset', 'amount', 'destination'] as const;
export type OrderFields = Pick<Transfer, (typeof ORDER_FIELDS)[number]>;

/** The names of the fields in which `incoming` differs from `existing` (empty: the same order). */
export function orderDiffers(existing: OrderFields, incoming: OrderFields): string[] {
  return ORDER_FIELDS.filter((f) => existing[f] !== incoming[f]);
}

export const FUNDING_FIELDS = ['userId', 'asset', 'amount'] as const;

export function fundingDiffers(existing: Pick<Funding, 'userId' | 'asset' | 'amount'>, incoming: Pick<Funding, 'userId' | 'asset' | 'amount'>): string[] {
  return FUNDING_FIELDS.filter((f) => existing[f] !== incoming[f]);
}

export interface FundingView {
  id: string;
  userId: string;
  asset: string;
  amount: number | string;
  createdAt: string;
}

export function fundingView(f: Funding): FundingView {
  return { id: f.id, userId: f.userId, asset: f.asset, amount: amountJson(f.amount), createdAt: new Date(f.createdAt).toISOString() };
}

export interface WithdrawalView {
  id: string;
  userId: string;
  asset: string;
  amount: number | string;
  state: WithdrawalState;
  createdAt: string;
}

export function withdrawalView(w: Withdrawal): WithdrawalView {
  return { id: w.id, userId: w.userId, asset: w.asset, amount: amountJson(w.amount), state: w.state, createdAt: new Date(w.createdAt).toISOString() };
}

export interface TransferView {
  orderId: string;
  userId: string;
  asset: string;
  amount: number | string;
  destination: string;
  state: TransferState;
  attempts: number;
  railRef: string | null;
  reason: string | null;
  resolution: { outcome: Resolution; note: string; resolvedAt: string } | null;
  createdAt: string;
  updatedAt: string;
}

export function transferView(t: Transfer): TransferView {
  return {
    orderId: t.orderId,
    userId: t.userId,
    asset: t.asset,
    amount: amountJson(t.amount),
    destination: t.destination,
    state: t.state,
    attempts: t.attempts,
    railRef: t.railRef,
    reason: t.reason,
    resolution: t.resolution === null ? null : { outcome: t.resolution.outcome, note: t.resolution.note, resolvedAt: new Date(t.resolution.at).toISOString() },
    createdAt: new Date(t.createdAt).toISOString(),
    updatedAt: new Date(t.updatedAt).toISOString(),
  };
}

export interface BalanceView {
  asset: string;
  available: number | string;
  held: number | string;
  paidOut: number | string;
}

export function balanceView(b: Balance): BalanceView {
  return { asset: b.asset, available: amountJson(b.available), held: amountJson(b.held), paidOut: amountJson(b.paidOut) };
}
