// The Idempotency-Key protocol (IETF draft), independent of what the request does: take the key
// (or replay, refuse a reused key, report one in progress), run the work, store its answer
// under the key — inside the work's own transaction when it makes an effect, outside when it
// was refused — and give the key back after a failure that changed nothing. Claims use it with
// the campaign id as scope; payouts reuse it unchanged with their own scope.
import { AllotError, errorBody, TransientConflictError } from '../core/errors.ts';
import type { StoredResponse } from '../core/idempotency.ts';
import type { IdempotencyStore, IdempotencyTx } from '../ports/idempotency-store.ts';
import type { Clock, IdSource } from '../ports/clock.ts';
import type { RandomSource } from '../ports/random.ts';

export interface Answer extends StoredResponse {
  /** a stored answer, replayed for a repeated key */
  replayed: boolean;
}

/** Handed to the work: how to store its answer inside its own transaction. */
export interface IdempotencyScope {
  readonly key: string | null;
  /** Stores `response` under the key in `tx` (no-op without a key). The work must then return
   * this same response object, so the protocol knows it is already stored. */
  completeIn(tx: IdempotencyTx, response: StoredResponse, ref: string | null): Promise<void>;
}

export type Protocolled<T> = { kind: 'answer'; answer: Answer; value: T | null } | { kind: 'refused'; code: 'IDEMPOTENCY_KEY_REUSED' | 'IDEMPOTENCY_IN_PROGRESS'; answer: Answer };

export interface IdempotencyOptions {
  /** how long a request owns its key before a retry may take it over */
  leaseMs?: number;
  /** attempts of one key statement that the database rolled back (deadlock, serialization) */
  statementAttempts?: number;
}

export class IdempotencyProtocol {
  private readonly leaseMs: number;
  private readonly attempts: number;

  constructor(
    private readonly store: IdempotencyStore,
    private readonly clock: Clock,
    private readonly ids: IdSource,
    private readonly random: RandomSource,
    opts: IdempotencyOptions = {},
  ) {
    this.leaseMs = opts.leaseMs ?? 10_000;
    this.attempts = opts.statementAttempts ?? 5;
  }

  /**
   * Runs `work` at most once per (scope, key) with the same fingerprint. `work` returns the
   * response to give (and to store) plus a value for the caller; it throws for failures, which
   * are not stored: the key is given back unless the error says the outcome is unknown.
   */
  async run<T>(
    scope: string,
    key: string | null,
    fingerprint: string,
    work: (s: IdempotencyScope) => Promise<{ response: StoredResponse; value: T }>,
  ): Promise<Protocolled<T>> {
    if (key === null) {
      const { response, value } = await work({ key: null, completeIn: async () => undefined });
      return { kind: 'answer', answer: { ...response, replayed: false }, value };
    }
    const owner = this.ids.next('req_');
    const begun = await this.statement(() => this.store.begin(scope, key, fingerprint, owner, this.clock.now(), this.leaseMs));
    if (begun.state === 'mismatch') return refused('IDEMPOTENCY_KEY_REUSED');
    if (begun.state === 'busy') return refused('IDEMPOTENCY_IN_PROGRESS');
    if (begun.state === 'done' && begun.response) return { kind: 'answer', answer: { ...begun.response, replayed: true }, value: null };

    let storedInTx: StoredResponse | null = null;
    let result: { response: StoredResponse; value: T };
    try {
      result = await work({
        key,
        completeIn: async (tx, response, ref) => {
          await tx.completeIdempotency(scope, key, owner, response, ref);
          storedInTx = response;
        },
      });
    } catch (err) {
      // Our lease ran out and a retry took the key over: our transaction rolled back, the retry
      // decides the outcome, and the key is no longer ours to touch.
      if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') return refused('IDEMPOTENCY_IN_PROGRESS');
      // Nothing was changed (or, for an unknown commit outcome, the key settles it later): give
      // the key back so a retry runs at once, unless the outcome is unknown.
      const unknown = err instanceof AllotError && err.details?.outcome === 'unknown';
      if (!unknown) await this.store.abandon(scope, key, owner).catch(() => undefined);
      throw err;
    }
    if (storedInTx !== result.response) {
      try {
        await this.statement(() => this.store.complete(scope, key, owner, result.response, null));
      } catch (err) {
        if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') return refused('IDEMPOTENCY_IN_PROGRESS');
        // The refusal stands but could not be stored: give the key back rather than leave a
        // retry to meet a different answer later; the work changed nothing.
        await this.store.abandon(scope, key, owner).catch(() => undefined);
        throw err;
      }
    }
    return { kind: 'answer', answer: { ...result.response, replayed: false }, value: result.value };
  }

  /** One key statement, retried when the database rolled it back for a reason a retry cures. */
  private async statement<R>(fn: () => Promise<R>): Promise<R> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!(err instanceof TransientConflictError)) throw err;
        if (attempt >= this.attempts) {
          throw new AllotError('UNAVAILABLE', 'The Idempotency-Key record kept conflicting with other requests; nothing was issued. Retry with the same key.', { outcome: 'nothing-issued' }, { cause: err });
        }
        await new Promise((r) => setTimeout(r, this.random.next() * 5 * attempt));
      }
    }
  }
}

function refused(code: 'IDEMPOTENCY_KEY_REUSED' | 'IDEMPOTENCY_IN_PROGRESS'): Protocolled<never> {
  return { kind: 'refused', code, answer: { status: new AllotError(code).status, body: errorBody(code), replayed: false } };
}
