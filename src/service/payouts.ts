// Payouts: fundings, withdrawals and transfer orders over the PayoutStore and the payment rail.
// Withdrawals run the Idempotency-Key protocol (keys scoped per user) around one guarded
// transaction. A transfer order commits its hold and outbox row at receipt, is moved to
// `executing` in its own committed step, goes to the rail at most once under a key derived
// from its id, and settles (post or release) in one transaction after the rail's answer; an
// answer that cannot be learned stops it at `unknown` for a person. A sweep (at start and
// periodically) sends what the outbox still holds and asks the rail about orders whose
// executor died, never re-sending blindly.
import { createHash } from 'node:crypto';
import { AllotError, errorBody, TransientConflictError } from '../core/errors.ts';
import { fingerprint, type StoredResponse } from '../core/idempotency.ts';
import {
  balanceView, fundingDiffers, fundingView, orderDiffers, transferView, withdrawalView,
  type Balance, type Resolution, type Transfer, type TransferState, type Withdrawal,
} from '../core/payout.ts';
import type { Clock, IdSource } from '../ports/clock.ts';
import { railKey, RailUnknownError, type PaymentRail, type RailOutcome } from '../ports/payment-rail.ts';
import type { LedgerCheck, PayoutStore } from '../ports/payout-store.ts';
import type { RandomSource } from '../ports/random.ts';
import type { IdempotencyProtocol } from './idempotency.ts';

export interface PayoutOptions {
  /** how long one rail call may take before its outcome is declared unknown (default 10 s) */
  railTimeoutMs?: number;
  /** how long a rail lookup may take during recovery (default 5 s) */
  lookupTimeoutMs?: number;
  /** an executing order's lease: the rail timeout plus this margin (default 5 s) */
  leaseMarginMs?: number;
  /** how often the sweep runs (default 1 s; 0 = never, tests call recover()) */
  sweepIntervalMs?: number;
  /** an outbox row older than this is sent by the sweep (its receiver died or lost it; default 2 s) */
  outboxGraceMs?: number;
  /** rail calls in flight per instance (default 32) */
  concurrency?: number;
  /** send orders right after receipt (default true; false leaves them to the sweep) */
  executeOnReceipt?: boolean;
}

export interface PayoutEvents {
  /** a transfer reached a state (the metrics and logs listen) */
  onTransferState?(state: TransferState, orderId: string): void;
  /** an error in the background executor or sweep (logged; never thrown) */
  onBackgroundError?(err: unknown, context: string): void;
}

export interface PayoutDeps {
  store: PayoutStore;
  idempotency: IdempotencyProtocol;
  rail: PaymentRail;
  clock: Clock;
  ids: IdSource;
  random: RandomSource;
  options?: PayoutOptions;
  events?: PayoutEvents;
}

export interface NewTransfer {
  orderId: string;
  userId: string;
  asset: string;
  amount: bigint;
  destination: string;
}

export interface Answered<T> {
  status: number;
  body: T;
  replayed: boolean;
}

export interface RecoveryReport {
  /** outbox orders handed to the executor */
  sent: number;
  /** executing orders whose lease ran out, taken over and decided (or left pending) */
  recovered: number;
}

/** The idempotency scope of a user's withdrawal keys (the column holds 128 characters). */
export function withdrawalScope(userId: string): string {
  const scope = `wd:${userId}`;
  return scope.length <= 128 ? scope : `wd#${createHash('sha256').update(userId).digest('base64url')}`;
}

const ID_PREFIX = { withdrawal: 'wd_', attempt: 'att_' } as const;

export class PayoutService {
  private readonly store: PayoutStore;
  private readonly rail: PaymentRail;
  private readonly railTimeoutMs: number;
  private readonly lookupTimeoutMs: number;
  private readonly leaseMs: number;
  private readonly outboxGraceMs: number;
  private readonly concurrency: number;
  private readonly executeOnReceipt: boolean;
  private readonly sweepIntervalMs: number;
  private sweepTimer: NodeJS.Timeout | null = null;
  private sweeping: Promise<RecoveryReport> | null = null;
  private closed = false;
  // The executor's queue: order ids waiting, and the sends in flight.
  private readonly queued = new Set<string>();
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(private readonly deps: PayoutDeps) {
    const o = deps.options ?? {};
    this.store = deps.store;
    this.rail = deps.rail;
    this.railTimeoutMs = o.railTimeoutMs ?? 10_000;
    this.lookupTimeoutMs = o.lookupTimeoutMs ?? 5_000;
    this.leaseMs = this.railTimeoutMs + (o.leaseMarginMs ?? 5_000);
    this.outboxGraceMs = o.outboxGraceMs ?? 2_000;
    this.concurrency = o.concurrency ?? 32;
    this.executeOnReceipt = o.executeOnReceipt ?? true;
    this.sweepIntervalMs = o.sweepIntervalMs ?? 1_000;
  }

  get railName(): string {
    return this.rail.name;
  }

  /** Starts the periodic sweep (its first run is now: recovery on start-up). */
  start(): void {
    if (this.sweepIntervalMs <= 0 || this.sweepTimer !== null) return;
    void this.sweep();
    this.sweepTimer = setInterval(() => void this.sweep(), this.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /** Stops the sweep and waits (up to `waitMs`) for rail calls in flight; orders still
   * executing are left to the next instance's recovery, which asks the rail. */
  async close(waitMs = 2_000): Promise<void> {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.queued.clear();
    const pending = [...this.inflight.values(), ...(this.sweeping ? [this.sweeping] : [])];
    if (pending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(pending), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    }
    await this.rail.close().catch(() => undefined);
  }

  // ---- fundings -------------------------------------------------------------------------

  async fund(input: { fundingId: string; userId: string; asset: string; amount: bigint }): Promise<Answered<{ funding: ReturnType<typeof fundingView> }>> {
    const funding = { id: input.fundingId, userId: input.userId, asset: input.asset, amount: input.amount, createdAt: this.deps.clock.now() };
    const r = await this.retrying(() => this.store.fund(funding));
    if (r.kind === 'created') return { status: 201, body: { funding: fundingView(r.funding) }, replayed: false };
    const differs = fundingDiffers(r.funding, funding);
    if (differs.length > 0) throw new AllotError('FUNDING_EXISTS', `fundingId ${input.fundingId} was used for another funding (its ${differs.join(', ')} ${differs.length === 1 ? 'differs' : 'differ'}); nothing was changed`, { existing: fundingView(r.funding), differs });
    return { status: 200, body: { funding: fundingView(r.funding) }, replayed: true };
  }

  // ---- withdrawals ----------------------------------------------------------------------

  /** Debits the user at most once per (user, key), never below zero. */
  async withdraw(userId: string, asset: string, amount: bigint, key: string | null): Promise<Answered<unknown>> {
    if (key === null) throw new AllotError('IDEMPOTENCY_KEY_REQUIRED', 'A withdrawal needs an Idempotency-Key header: the same key on every retry of one withdrawal, a new key for a new one; nothing was debited.');
    const fp = fingerprint('withdrawal', { userId, asset, amount: amount.toString() });
    const out = await this.deps.idempotency.run(withdrawalScope(userId), key, fp, async (scope) => {
      const w: Withdrawal = { id: this.deps.ids.next(ID_PREFIX.withdrawal), userId, asset, amount, state: 'succeeded', idempotencyKey: key, createdAt: this.deps.clock.now() };
      let stored: StoredResponse | null = null;
      const r = await this.retrying(() =>
        this.store.withdraw(w, async (tx, done) => {
          stored = { status: 201, body: { withdrawal: withdrawalView(done) } };
          await scope.completeIn(tx, stored, done.id);
        }),
      );
      if (r.kind === 'created') return { response: stored ?? { status: 201, body: { withdrawal: withdrawalView(r.withdrawal) } }, value: { replayed: false } };
      if (r.kind === 'exists') {
        // The key's record was purged but the withdrawal is forever: the same request gets the
        // same withdrawal (a replay), another one under this key is refused.
        const same = r.withdrawal.asset === asset && r.withdrawal.amount === amount;
        return same ? { response: { status: 201, body: { withdrawal: withdrawalView(r.withdrawal) } }, value: { replayed: true } } : { response: refusalOf('IDEMPOTENCY_KEY_REUSED'), value: { replayed: false } };
      }
      if (r.kind === 'no_asset') return { response: refusalOf('ASSET_NOT_FOUND', { asset }), value: { replayed: false } };
      return { response: refusalOf('INSUFFICIENT_FUNDS', { asset }), value: { replayed: false } };
    });
    if (out.kind === 'refused') return { status: out.answer.status, body: out.answer.body, replayed: false };
    return { status: out.answer.status, body: out.answer.body, replayed: out.answer.replayed || out.value?.replayed === true };
  }

  // ---- transfer orders ------------------------------------------------------------------

  /** Receives an order: 202 with the new order, 200 with the existing one for an identical
   * repeat (never a second execution), ORDER_EXISTS when any field differs. */
  async transfer(input: NewTransfer): Promise<Answered<{ transfer: ReturnType<typeof transferView> }>> {
    const now = this.deps.clock.now();
    const t: Transfer = { ...input, state: 'received', attempts: 0, attemptId: null, leaseUntil: null, railRef: null, reason: null, resolution: null, createdAt: now, updatedAt: now };
    const r = await this.retrying(() => this.store.receiveTransfer(t));
    if (r.kind === 'insufficient') throw new AllotError('INSUFFICIENT_FUNDS', undefined, { asset: input.asset });
    if (r.kind === 'no_asset') throw new AllotError('ASSET_NOT_FOUND', undefined, { asset: input.asset });
    if (r.kind === 'exists') {
      const differs = orderDiffers(r.transfer, input);
      if (differs.length > 0) {
        throw new AllotError('ORDER_EXISTS', `orderId ${input.orderId} is already an order with different ${differs.join(', ')}; nothing was executed. A new payment needs a new orderId.`, { existing: transferView(r.transfer), differs });
      }
      return { status: 200, body: { transfer: transferView(r.transfer) }, replayed: true };
    }
    this.deps.events?.onTransferState?.('received', t.orderId);
    if (this.executeOnReceipt) this.submit(t.orderId);
    return { status: 202, body: { transfer: transferView(r.transfer) }, replayed: false };
  }

  async getTransfer(orderId: string): Promise<Transfer> {
    const t = await this.store.getTransfer(orderId);
    if (!t) throw new AllotError('ORDER_NOT_FOUND', undefined, { orderId });
    return t;
  }

  async listTransfers(state: TransferState | null, limit: number, after: string | null): Promise<{ items: Transfer[]; nextCursor: string | null }> {
    const items = await this.store.listTransfers(state, limit, after);
    const last = items[items.length - 1];
    return { items, nextCursor: items.length === limit && last ? Buffer.from(last.orderId, 'utf8').toString('base64url') : null };
  }

  /** An operator's decision on an `unknown` order; the same decision again replays. */
  async resolve(orderId: string, outcome: Resolution, note: string): Promise<{ transfer: Transfer; replayed: boolean }> {
    const r = await this.retrying(() => this.store.resolve(orderId, outcome, note, this.deps.clock.now()));
    if (r.kind === 'not_found') throw new AllotError('ORDER_NOT_FOUND', undefined, { orderId });
    if (r.kind === 'not_unknown') {
      throw new AllotError('ORDER_NOT_UNKNOWN', `order ${orderId} is ${r.transfer.state}${r.transfer.resolution ? ` (resolved as ${r.transfer.resolution.outcome})` : ''}; only an unknown order can be resolved`, { state: r.transfer.state, transfer: transferView(r.transfer) });
    }
    if (r.kind === 'resolved') this.deps.events?.onTransferState?.(outcome, orderId);
    return { transfer: r.transfer, replayed: r.kind === 'replayed' };
  }

  balances(userId: string): Promise<Balance[]> {
    return this.store.balances(userId);
  }

  balanceViews(userId: string): Promise<ReturnType<typeof balanceView>[]> {
    return this.balances(userId).then((b) => b.map(balanceView));
  }

  async audit(): Promise<{ ok: boolean; checks: LedgerCheck[] }> {
    const checks = await this.store.audit();
    return { ok: checks.every((c) => c.ok), checks };
  }

  // ---- the executor -----------------------------------------------------------------------

  /** Queues an order for sending (a no-op when it is already queued or in flight here). */
  submit(orderId: string): void {
    if (this.closed || this.queued.has(orderId) || this.inflight.has(orderId)) return;
    this.queued.add(orderId);
    this.pump();
  }

  /** Resolves when nothing is queued or in flight on this instance (tests, the lab). */
  async idle(): Promise<void> {
    while (this.queued.size > 0 || this.inflight.size > 0) await Promise.allSettled([...this.inflight.values()]);
  }

  private pump(): void {
    while (!this.closed && this.inflight.size < this.concurrency && this.queued.size > 0) {
      const orderId = this.queued.values().next().value as string;
      this.queued.delete(orderId);
      const p = this.execute(orderId)
        .catch((err) => this.deps.events?.onBackgroundError?.(err, `executing order ${orderId}`))
        .finally(() => {
          this.inflight.delete(orderId);
          this.pump();
        });
      this.inflight.set(orderId, p);
    }
  }

  /** received -> executing (committed) -> the rail, once. */
  private async execute(orderId: string): Promise<void> {
    const attemptId = this.deps.ids.next(ID_PREFIX.attempt);
    const now = this.deps.clock.now();
    const t = await this.retrying(() => this.store.startExecution(orderId, attemptId, now, now + this.leaseMs));
    if (t === null) return; // another instance took it, or it is no longer received
    this.deps.events?.onTransferState?.('executing', orderId);
    await this.send(t, attemptId);
  }

  /** One rail call by the attempt that owns the order, then its settlement. A failure to record
   * the answer leaves the order executing: its lease runs out and a recovery asks the rail. */
  private async send(t: Transfer, attemptId: string): Promise<void> {
    let outcome: RailOutcome;
    try {
      outcome = await this.rail.execute(
        { key: railKey(t.orderId), orderId: t.orderId, userId: t.userId, asset: t.asset, amount: t.amount, destination: t.destination },
        AbortSignal.timeout(this.railTimeoutMs),
      );
    } catch (err) {
      const reason = err instanceof RailUnknownError ? err.message : `the rail call failed (${(err as Error).message ?? String(err)}); its outcome is unknown`;
      if (await this.retrying(() => this.store.markUnknown(t.orderId, attemptId, reason, this.deps.clock.now()))) this.deps.events?.onTransferState?.('unknown', t.orderId);
      return;
    }
    if (await this.retrying(() => this.store.settle(t.orderId, attemptId, outcome, this.deps.clock.now()))) this.deps.events?.onTransferState?.(outcome.status, t.orderId);
  }

  /** One sweep: send what the outbox still holds (older than the grace), and decide orders
   * whose executor's lease ran out by asking the rail. Overlapping calls share one run. */
  recover(): Promise<RecoveryReport> {
    if (!this.sweeping) {
      this.sweeping = this.sweepOnce().finally(() => {
        this.sweeping = null;
      });
    }
    return this.sweeping;
  }

  private async sweep(): Promise<void> {
    if (this.closed) return;
    try {
      await this.recover();
    } catch (err) {
      this.deps.events?.onBackgroundError?.(err, 'payout recovery sweep');
    }
  }

  private async sweepOnce(): Promise<RecoveryReport> {
    const now = this.deps.clock.now();
    const report: RecoveryReport = { sent: 0, recovered: 0 };
    for (const orderId of await this.store.pendingOutbox(now - this.outboxGraceMs, 200)) {
      if (this.closed) return report;
      this.submit(orderId);
      report.sent++;
    }
    // Each expired order is decided on its own (a lookup, maybe a resend that waits for the
    // rail), in parallel: the sweep takes as long as the slowest, not their sum.
    const recoveries: Array<Promise<void>> = [];
    for (const t of await this.store.expiredExecutions(now, 100)) {
      if (this.closed) break;
      if (this.inflight.has(t.orderId) || t.attemptId === null) continue;
      const attemptId = this.deps.ids.next(ID_PREFIX.attempt);
      const at = this.deps.clock.now();
      if (!(await this.store.takeOverExecution(t.orderId, t.attemptId, attemptId, at, at + this.leaseMs))) continue;
      report.recovered++;
      const p = this.recoverOne(t, attemptId)
        .catch((err) => this.deps.events?.onBackgroundError?.(err, `recovering order ${t.orderId}`))
        .finally(() => this.inflight.delete(t.orderId));
      this.inflight.set(t.orderId, p);
      recoveries.push(p);
    }
    await Promise.all(recoveries);
    return report;
  }

  /** An order left executing by a dead executor: ask the rail what it did. */
  private async recoverOne(t: Transfer, attemptId: string): Promise<void> {
    let look;
    try {
      look = await this.rail.lookup(railKey(t.orderId), AbortSignal.timeout(this.lookupTimeoutMs));
    } catch (err) {
      const reason = `its executor stopped while the rail was deciding, and the rail could not be asked (${(err as Error).message ?? String(err)}); the outcome is unknown`;
      if (await this.retrying(() => this.store.markUnknown(t.orderId, attemptId, reason, this.deps.clock.now()))) this.deps.events?.onTransferState?.('unknown', t.orderId);
      return;
    }
    if (look.status === 'succeeded' || look.status === 'failed') {
      if (await this.retrying(() => this.store.settle(t.orderId, attemptId, look, this.deps.clock.now()))) this.deps.events?.onTransferState?.(look.status, t.orderId);
      return;
    }
    // Still deciding: this attempt holds a fresh lease; the next sweep after it asks again.
    if (look.status === 'pending') return;
    // The rail never received it, so it was never executed: send it once, under the same key
    // (a first request still on its way would be the same execution at the rail).
    if (await this.retrying(() => this.store.markSent(t.orderId, attemptId, this.deps.clock.now()))) await this.send(t, attemptId);
  }

  /** A store call retried when the database rolled it back for a reason a retry cures. */
  private async retrying<R>(fn: () => Promise<R>, attempts = 6): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TransientConflictError) || attempt >= attempts) {
          if (err instanceof TransientConflictError) {
            throw new AllotError('UNAVAILABLE', 'The ledger kept conflicting with concurrent requests; nothing was changed. Retry (with the same id or key).', { outcome: 'nothing-issued' }, { cause: err });
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, this.deps.random.next() * 5 * attempt));
      }
    }
  }
}

function refusalOf(code: 'INSUFFICIENT_FUNDS' | 'ASSET_NOT_FOUND' | 'IDEMPOTENCY_KEY_REUSED', details?: Record<string, unknown>): StoredResponse {
  return { status: new AllotError(code).status, body: errorBody(code, undefined, details) };
}
