// `pessimistic`: lock the campaign row (SELECT … FOR UPDATE), then the user's counter row,
// re-check both under the locks, and write. Every claim of a campaign is serialized on its
// row lock; safe across instances, slower under contention than `conditional`.
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import { retryPolicy, type StrategyDeps } from './deps.ts';
import { claimWithLockedCounter } from './locked-claim.ts';
import { outcome, Refused, settle } from './outcome.ts';
import { retrying } from './retry.ts';
import { AllotError } from '../core/errors.ts';

export function createPessimistic(deps: StrategyDeps): ClaimStrategy {
  const policy = retryPolicy(deps);
  return {
    name: 'pessimistic',
    safe: true,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const { value, retries } = await retrying(policy, deps, req.signal, () =>
        settle(() =>
          store.transaction(async (tx) => {
            if (req.unit) {
              const row = await tx.readStock(req.unit, { forUpdate: true });
              if (row === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
              if (row.issued >= row.stock) throw new Refused('sold_out');
            }
            return claimWithLockedCounter(tx, req);
          }),
        ),
      );
      return outcome(value, { retries });
    },
  };
}
