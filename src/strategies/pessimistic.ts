// `pessimistic`: lock the campaign row (SELECT … FOR UPDATE), then the user's counter row,
// re-check both under the locks, and write. Every claim of a campaign is serialized on its
// row lock; safe across instances, slower under contention than `conditional`.
import { AllotError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy } from '../ports/claim-strategy.ts';

export const pessimistic: ClaimStrategy = {
  name: 'pessimistic',
  safe: true,
  async claim(store: ClaimStore, req: ClaimRequest): Promise<Claim> {
    const { campaign, userId, day } = req;
    return store.transaction(async (tx) => {
      const row = await tx.lockCampaign(campaign.id);
      if (row === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
      if (row.issued >= row.stock) throw new AllotError('SOLD_OUT');
      const counter = await tx.lockUserCounter(campaign.id, userId, day);
      const dayCount = counter.day === day ? counter.dayCount : 0;
      if (counter.total >= campaign.perUserLimit) throw new AllotError('USER_LIMIT_REACHED');
      if (campaign.perUserDailyLimit !== null && dayCount >= campaign.perUserDailyLimit) throw new AllotError('USER_LIMIT_REACHED');
      await tx.writeUserCounter(campaign.id, userId, { total: counter.total + 1, day, dayCount: dayCount + 1 });
      // Still conditional: the row lock makes it always apply, the guard makes a bug visible.
      if (!(await tx.takeStock(campaign.id, 1))) throw new AllotError('SOLD_OUT');
      const claim: Claim = { id: req.claimId, campaignId: campaign.id, userId, prizeId: null, createdAt: req.nowMs };
      await tx.insertClaim(claim, day, req.idempotencyKey);
      await req.onCommit(tx, claim);
      return claim;
    });
  },
};
