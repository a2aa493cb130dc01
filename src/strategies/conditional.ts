// `conditional`: one transaction of guarded writes. The per-user counter row is bumped only
// while the limits allow, then `issued` only while stock remains; either guard refusing rolls
// the whole transaction back. Safe across any number of instances.
import { AllotError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy } from '../ports/claim-strategy.ts';

export const conditional: ClaimStrategy = {
  name: 'conditional',
  safe: true,
  async claim(store: ClaimStore, req: ClaimRequest): Promise<Claim> {
    const { campaign, userId } = req;
    return store.transaction(async (tx) => {
      // The user row first: it is rarely contended, so the hot campaign row is locked for the
      // shortest time (from its update to the commit).
      const userOk = await tx.guardUser(campaign.id, userId, {
        perUserLimit: campaign.perUserLimit,
        perUserDailyLimit: campaign.perUserDailyLimit,
        day: req.day,
      });
      if (!userOk) throw new AllotError('USER_LIMIT_REACHED');
      if (!(await tx.takeStock(campaign.id, 1))) throw new AllotError('SOLD_OUT');
      const claim: Claim = { id: req.claimId, campaignId: campaign.id, userId, prizeId: null, createdAt: req.nowMs };
      await tx.insertClaim(claim, req.day, req.idempotencyKey);
      await req.onCommit(tx, claim);
      return claim;
    });
  },
};
