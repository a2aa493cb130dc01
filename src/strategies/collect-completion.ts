// For a strategy whose store writes a whole claim in one call: the request's `beforeCommit`
// runs beforehand against a tx that only records what it stores under the Idempotency-Key, and
// the store writes that answer in the claim's own statement or transaction.
import type { Claim } from '../core/claim.ts';
import type { StoredResponse } from '../core/idempotency.ts';
import type { KeyCompletion } from '../ports/claim-batch.ts';
import type { ClaimTx } from '../ports/claim-store.ts';
import type { ClaimRequest } from '../ports/claim-strategy.ts';

/** Runs `req.beforeCommit` for `claim` and returns the key's answer it would have stored (null
 * for a request without a key). `beforeCommit` may only complete the key. */
export async function collectCompletion(req: ClaimRequest, claim: Claim, strategy: string): Promise<KeyCompletion | null> {
  const collected: { completion: KeyCompletion | null } = { completion: null };
  const tx = {
    completeIdempotency(scope: string, key: string, owner: string, response: StoredResponse, ref: string | null): Promise<void> {
      collected.completion = { scope, key, owner, response, ref };
      return Promise.resolve();
    },
  };
  const collecting = new Proxy(tx, {
    get(target, prop) {
      if (prop in target) return target[prop as keyof typeof target];
      if (prop === 'then') return undefined;
      return () => {
        throw new Error(`${strategy}: beforeCommit may only complete the Idempotency-Key (it called ${String(prop)})`);
      };
    },
  }) as unknown as ClaimTx;
  await req.beforeCommit(collecting, claim);
  return collected.completion;
}
