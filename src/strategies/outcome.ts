// Business refusals inside a strategy's transaction: thrown to roll the transaction back,
// caught at its boundary and turned into the strategy's outcome.
import type { Claim } from '../core/claim.ts';
import type { StrategyOutcome, StrategyStats } from '../ports/claim-strategy.ts';

export class Refused extends Error {
  constructor(readonly kind: 'sold_out' | 'user_limit') {
    super(kind);
    this.name = 'Refused';
  }
}

/** Runs fn (which throws Refused to roll back) and maps its result to an outcome. */
export async function settle(fn: () => Promise<Claim>): Promise<Claim | Refused> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Refused) return err;
    throw err;
  }
}

export function outcome(result: Claim | Refused, stats: StrategyStats): StrategyOutcome {
  return result instanceof Refused ? { kind: result.kind, stats } : { kind: 'issued', claim: result, stats };
}

export function newClaim(req: { claimId: string; campaign: { id: string }; userId: string; nowMs: number; unit: { prizeId: string | null } | null }): Claim {
  return { id: req.claimId, campaignId: req.campaign.id, userId: req.userId, prizeId: req.unit?.prizeId ?? null, createdAt: req.nowMs };
}
