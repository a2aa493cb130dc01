// `pessimistic`: lock the campaign row (SELECT … FOR UPDATE), then the user's counter row,
// re-check both under the locks, and write. Every claim of a campaign is serialized on its
// row lock; safe across instances, slower under contention than `conditional`.
import { AllotError } from '../core/errors.ts';
import type { Claim } from '../core/claim.ts';
import { claimWithLockedCounter } from './locked-claim.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy } from '../ports/claim-strategy.ts';

export const pessimistic: ClaimStrategy = {
  name: 'pessimistic',
  safe: true,
  async claim(store: ClaimStore, req: ClaimRequest): Promise<Claim> {
    const { campaign } = req;
    return store.transaction(async (tx) => {
      const row = await tx.lockCampaign(campaign.id);
      if (row === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
      if (row.issued >= row.stock) throw new AllotError('SOLD_OUT');
      return claimWithLockedCounter(tx, req);
    });
  },
};
