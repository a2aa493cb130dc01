// The port of the Idempotency-Key protocol (src/service/idempotency.ts): keys scoped by a
// string (a campaign id for claims), each bound to its payload's fingerprint, owned by one
// request under a lease until its response is stored.
import type { StoredResponse } from '../core/idempotency.ts';

export interface IdempotencyBegin {
  /** 'owner': this request now owns the key; 'done': a stored response; 'busy': another request runs it;
   * 'mismatch': the key was used with another payload. */
  state: 'owner' | 'done' | 'busy' | 'mismatch';
  response?: StoredResponse;
}

/** Completion inside the transaction that makes the request's effect, so both commit or neither. */
export interface IdempotencyTx {
  /** Stores the final response under a key this request owns; throws AllotError
   * IDEMPOTENCY_IN_PROGRESS when a retry took the key over (the transaction must not commit). */
  completeIdempotency(scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void>;
}

export interface IdempotencyStore {
  /** Takes the key, or learns what it holds. A running key whose lease ran out is taken over. */
  begin(scope: string, key: string, fingerprint: string, owner: string, nowMs: number, leaseMs: number): Promise<IdempotencyBegin>;
  /** Stores a response (a refusal) outside any effect's transaction. Same contract as IdempotencyTx. */
  complete(scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void>;
  /** Gives a key back after a failure that changed nothing, so a retry can run at once. */
  abandon(scope: string, key: string, owner: string): Promise<void>;
  /** Deletes keys created before `beforeMs` (finished ones, and running ones whose lease ran
   * out), at most `limit`; returns how many. */
  purge(beforeMs: number, nowMs: number, limit: number): Promise<number>;
}
