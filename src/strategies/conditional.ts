// `conditional`: one transaction of guarded writes. The per-user counter row is bumped only
// while the limits allow, then `issued` only while stock remains; either guard refusing rolls
// the whole transaction back. Safe across any number of instances.
//
// A store that takes the whole claim in one call (ClaimStore.claimConditional: one statement on
// PostgreSQL, one short transaction on MySQL) gets it that way, with the key's answer collected
// from `beforeCommit` first; any other store gets the step-by-step transaction below.
import { AllotError } from '../core/errors.ts';
import type { ClaimStore, ConditionalClaim } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import { collectCompletion } from './collect-completion.ts';
import { retryPolicy, type StrategyDeps } from './deps.ts';
import { newClaim, outcome, Refused, settle } from './outcome.ts';
import { retrying } from './retry.ts';

export function createConditional(deps: StrategyDeps): ClaimStrategy {
  const policy = retryPolicy(deps);
  return {
    name: 'conditional',
    safe: true,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const { campaign, userId } = req;
      const limits = { perUserLimit: campaign.perUserLimit, perUserDailyLimit: campaign.perUserDailyLimit, day: req.day };
      if (store.claimConditional) {
        const once = store.claimConditional.bind(store);
        const claim = newClaim(req);
        const c: ConditionalClaim = { claim, unit: req.unit, limits, idempotencyKey: req.idempotencyKey, draw: req.draw, completion: await collectCompletion(req, claim, 'conditional') };
        const { value, retries } = await retrying(policy, deps, req.signal, () => once(c));
        if (value === 'key_lost') throw new AllotError('IDEMPOTENCY_IN_PROGRESS', 'This request lost its Idempotency-Key lease to a retry; the retry decides the outcome.');
        return value === 'issued' ? { kind: 'issued', claim, stats: { retries } } : { kind: value, stats: { retries } };
      }
      const { value, retries } = await retrying(policy, deps, req.signal, () =>
        settle(() =>
          store.transaction(async (tx) => {
            // The user row first: it is rarely contended, so the hot campaign row is locked for the
            // shortest time (from its update to the commit).
            const day = await tx.guardUser(campaign.id, userId, limits);
            if (day === null) throw new Refused('user_limit');
            // A lottery miss takes no unit: only the user's limits count.
            if (req.unit && !(await tx.takeStock(req.unit, 1))) throw new Refused('sold_out');
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
