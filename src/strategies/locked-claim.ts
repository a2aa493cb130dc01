// The write half shared by the lock-based strategies: with the user's counter row locked,
// re-check the limits, count the claim, take the stock (still a conditional guard), insert the
// claim and let the request commit its idempotency record in the same transaction.
import { AllotError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimTx } from '../ports/claim-store.ts';
import type { ClaimRequest } from '../ports/claim-strategy.ts';

export async function claimWithLockedCounter(tx: ClaimTx, req: ClaimRequest): Promise<Claim> {
  const { campaign, userId, day } = req;
  const counter = await tx.lockUserCounter(campaign.id, userId, day);
  const dayCount = counter.day === day ? counter.dayCount : 0;
  if (counter.total >= campaign.perUserLimit) throw new AllotError('USER_LIMIT_REACHED');
  if (campaign.perUserDailyLimit !== null && dayCount >= campaign.perUserDailyLimit) throw new AllotError('USER_LIMIT_REACHED');
  await tx.writeUserCounter(campaign.id, userId, { total: counter.total + 1, day, dayCount: dayCount + 1 });
  // Conditional whatever locks are held: they make it apply, the guard keeps the invariant if they fail.
  if (!(await tx.takeStock(campaign.id, 1))) throw new AllotError('SOLD_OUT');
  const claim: Claim = { id: req.claimId, campaignId: campaign.id, userId, prizeId: null, createdAt: req.nowMs };
  await tx.insertClaim(claim, day, req.idempotencyKey);
  await req.onCommit(tx, claim);
  return claim;
}
