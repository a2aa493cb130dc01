// The write half shared by the lock-based strategies: with the user's counter row locked,
// re-check the limits, count the claim, take the stock (still a conditional guard), insert the
// claim and let the request commit its idempotency record in the same transaction.
import type { Claim } from '../core/claim.ts';
import type { ClaimTx } from '../ports/claim-store.ts';
import type { ClaimRequest } from '../ports/claim-strategy.ts';
import { newClaim, Refused } from './outcome.ts';

export async function claimWithLockedCounter(tx: ClaimTx, req: ClaimRequest): Promise<Claim> {
  const { campaign, userId, day } = req;
  const counter = await tx.lockUserCounter(campaign.id, userId, day);
  // The counter's day never moves backwards (see ClaimTx.guardUser): a late commit counts in it.
  const effectiveDay = counter.day > day ? counter.day : day;
  const dayCount = counter.day === effectiveDay ? counter.dayCount : 0;
  if (counter.total >= campaign.perUserLimit) throw new Refused('user_limit');
  if (campaign.perUserDailyLimit !== null && dayCount >= campaign.perUserDailyLimit) throw new Refused('user_limit');
  await tx.writeUserCounter(campaign.id, userId, { total: counter.total + 1, day: effectiveDay, dayCount: dayCount + 1 });
  // Conditional whatever locks are held: they make it apply, the guard keeps the invariant if they fail.
  if (req.unit && !(await tx.takeStock(req.unit, 1))) throw new Refused('sold_out');
  const claim = newClaim(req);
  await tx.insertClaim(claim, effectiveDay, req.idempotencyKey, req.draw);
  await req.beforeCommit(tx, claim);
  return claim;
}
