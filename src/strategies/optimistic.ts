// `optimistic`: read the campaign row with its version, then one transaction that counts the
// user (a conditional guard) and `UPDATE … SET issued = issued + 1, version = version + 1 WHERE
// id = ? AND version = ?`. Zero rows means someone else claimed in between: roll back and try
// again, bounded by a count and a time budget with jitter (the seeds: 3 times or 100 ms). No
// blocking; under contention most attempts conflict and some requests give up (503, nothing
// issued). `optimistic-stock` is the seed's variant that uses the stock counter itself as the
// version (`WHERE issued = <read value>`): no extra column, but a value can come back to what
// was read (ABA) — see docs/strategies.md.
import { AllotError, TransientConflictError } from '../core/errors.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import { DEFAULT_RETRY, retrying, type RetryPolicy } from './retry.ts';
import type { StrategyDeps } from './deps.ts';
import { newClaim, outcome, Refused, settle } from './outcome.ts';

/** The seeds: "retry 3 times, or for 100 ms". More here, with jitter: a claim also waits for a pooled connection. */
export const OPTIMISTIC_RETRY: Readonly<RetryPolicy> = Object.freeze({ ...DEFAULT_RETRY, maxAttempts: 10, budgetMs: 1_000, baseDelayMs: 1, maxDelayMs: 20 });

class VersionConflict extends Error {
  constructor() {
    super('the campaign row changed since it was read');
    this.name = 'VersionConflict';
  }
}

export function createOptimistic(deps: StrategyDeps, column: 'version' | 'issued'): ClaimStrategy {
  const policy: RetryPolicy = { ...OPTIMISTIC_RETRY, ...deps.optimisticRetry };
  return {
    name: column === 'version' ? 'optimistic' : 'optimistic-stock',
    safe: true,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const { campaign, userId } = req;
      const { value, retries } = await retrying(policy, deps, req.signal, () =>
        settle(() =>
          store.transaction(async (tx) => {
            const unit = req.unit;
            const row = unit ? await tx.readStock(unit) : null;
            if (unit && row === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
            if (row && row.issued >= row.stock) throw new Refused('sold_out');
            const limits = { perUserLimit: campaign.perUserLimit, perUserDailyLimit: campaign.perUserDailyLimit, day: req.day };
            const day = await tx.guardUser(campaign.id, userId, limits);
            if (day === null) throw new Refused('user_limit');
            if (unit && row) {
              const expected = column === 'version' ? row.version : row.issued;
              if (!(await tx.takeStockAtVersion(unit, column, expected))) throw new TransientConflictError(new VersionConflict());
            }
            const claim = newClaim(req);
            await tx.insertClaim(claim, day, req.idempotencyKey, req.draw);
            await req.beforeCommit(tx, claim);
            return claim;
          }),
        ),
      );
      return outcome(value, { retries });
    },
  };
}
