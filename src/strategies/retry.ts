// The retry policy a strategy applies to attempts the database (or a fence, or a version check)
// rolled back: bounded by a count and a time budget, with full jitter from an injected source.
import { AllotError, TransientConflictError } from '../core/errors.ts';
import type { RandomSource } from '../ports/random.ts';

export interface RetryPolicy {
  /** attempts in all, the first included */
  maxAttempts: number;
  /** no new attempt starts once this much time has passed since the first */
  budgetMs: number;
  /** the jitter window grows from this, doubling per attempt, up to maxDelayMs */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({ maxAttempts: 8, budgetMs: 5_000, baseDelayMs: 2, maxDelayMs: 50 });

export interface RetryDeps {
  random: RandomSource;
  /** monotonic ms; injectable for tests */
  now?: () => number;
}

/** Runs `attempt` until it returns, retrying on TransientConflictError within the policy; a
 * give-up is AllotError UNAVAILABLE (nothing was issued) carrying the retries made. */
export async function retrying<T>(policy: RetryPolicy, deps: RetryDeps, signal: AbortSignal | undefined, attempt: (n: number) => Promise<T>): Promise<{ value: T; retries: number }> {
  const now = deps.now ?? (() => performance.now());
  const started = now();
  for (let n = 1; ; n++) {
    signal?.throwIfAborted();
    try {
      return { value: await attempt(n), retries: n - 1 };
    } catch (err) {
      if (!(err instanceof TransientConflictError)) throw err;
      const window = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
      const delay = deps.random.next() * window;
      if (n >= policy.maxAttempts || now() - started + delay > policy.budgetMs) {
        throw new AllotError('UNAVAILABLE', `The claim conflicted with others ${n} time(s) and was rolled back each time; nothing was issued.`, { outcome: 'nothing-issued', reason: 'contention', retries: n - 1 }, { cause: err });
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
