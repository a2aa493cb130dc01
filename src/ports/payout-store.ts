// The system-of-record port of payouts: a double-entry ledger with per-user accounts, fundings,
// withdrawals and transfer orders. Every method is one transaction whose guards (a conditional
// debit, a unique id, a state compared in the WHERE) decide; each reports whether it applied.
import type { Balance, Funding, Resolution, Transfer, TransferState, Withdrawal } from '../core/payout.ts';
import type { IdempotencyTx } from './idempotency-store.ts';
import type { RailOutcome } from './payment-rail.ts';

export type FundResult = { kind: 'created'; funding: Funding } | { kind: 'exists'; funding: Funding };
export type WithdrawResult = { kind: 'created'; withdrawal: Withdrawal } | { kind: 'exists'; withdrawal: Withdrawal } | { kind: 'insufficient' } | { kind: 'no_asset' };
export type ReceiveResult = { kind: 'created'; transfer: Transfer } | { kind: 'exists'; transfer: Transfer } | { kind: 'insufficient' } | { kind: 'no_asset' };
export type ResolveResult = { kind: 'resolved' | 'replayed'; transfer: Transfer } | { kind: 'not_unknown'; transfer: Transfer } | { kind: 'not_found' };

/** One check of the ledger audit; `ok` false means an invariant is broken. */
export interface LedgerCheck {
  name: string;
  ok: boolean;
  asset?: string;
  [detail: string]: unknown;
}

export interface PayoutStore {
  /** Credits a user from the funding account, once per funding id (forever). A funding that
   * would push a balance past 2^63-1 is VALIDATION_FAILED and changes nothing. */
  fund(f: Funding): Promise<FundResult>;
  /** Debits available and credits paid out, once per (user, key) forever, never below zero;
   * `beforeCommit` stores the key's answer in the same transaction. */
  withdraw(w: Withdrawal, beforeCommit: (tx: IdempotencyTx, w: Withdrawal) => Promise<void>): Promise<WithdrawResult>;
  /** Inserts the order (its id unique forever), moves the amount from available to held and
   * writes the outbox row, in one transaction. */
  receiveTransfer(t: Transfer): Promise<ReceiveResult>;
  /** received -> executing under a new attempt id, committed before the rail is called; the
   * outbox row goes. Null when the order is not `received` (someone else took it). */
  startExecution(orderId: string, attemptId: string, nowMs: number, leaseUntil: number): Promise<Transfer | null>;
  /** An `executing` order whose lease ran out (its executor crashed or froze) is taken over
   * under a new attempt id; false when it is no longer that attempt's or not yet expired. */
  takeOverExecution(orderId: string, fromAttemptId: string, toAttemptId: string, nowMs: number, leaseUntil: number): Promise<boolean>;
  /** Counts a send to the rail by this attempt (the recovery's resend of an order the rail
   * never saw). False when the attempt no longer owns the order. */
  markSent(orderId: string, attemptId: string, nowMs: number): Promise<boolean>;
  /** executing -> succeeded (hold posted as paid out) or failed (hold released), with the ledger
   * entry, in one transaction; only for the attempt that owns it. False when it does not. */
  settle(orderId: string, attemptId: string, outcome: RailOutcome, nowMs: number): Promise<boolean>;
  /** executing -> unknown (the hold stays) for the attempt that owns it. */
  markUnknown(orderId: string, attemptId: string, reason: string, nowMs: number): Promise<boolean>;
  /** An operator's decision on an `unknown` order: post or release its hold, exactly once; the
   * same decision again replays. */
  resolve(orderId: string, outcome: Resolution, note: string, nowMs: number): Promise<ResolveResult>;
  getTransfer(orderId: string): Promise<Transfer | null>;
  listTransfers(state: TransferState | null, limit: number, afterOrderId: string | null): Promise<Transfer[]>;
  /** Orders received but not yet started, received before `beforeMs` (the outbox). */
  pendingOutbox(beforeMs: number, limit: number): Promise<string[]>;
  /** Orders `executing` whose lease ran out before `nowMs`. */
  expiredExecutions(nowMs: number, limit: number): Promise<Transfer[]>;
  balances(userId: string): Promise<Balance[]>;
  /** Conservation and double-entry checks over the whole ledger, read in one snapshot. */
  audit(): Promise<LedgerCheck[]>;
}
