// Claim domain: the durable claim record, the refusal reasons and the UTC day used by daily limits.

export interface Claim {
  id: string;
  campaignId: string;
  userId: string;
  prizeId: string | null;
  createdAt: number; // epoch ms
}

export type Refusal = 'SOLD_OUT' | 'USER_LIMIT_REACHED' | 'CAMPAIGN_NOT_ACTIVE';

/** The UTC calendar day of an instant, as YYYY-MM-DD: the bucket of perUserDailyLimit. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export interface ClaimView {
  id: string;
  campaignId: string;
  userId: string;
  prizeId: string | null;
  createdAt: string;
}

export function claimView(c: Claim): ClaimView {
  return {
    id: c.id,
    campaignId: c.campaignId,
    userId: c.userId,
    prizeId: c.prizeId,
    createdAt: new Date(c.createdAt).toISOString(),
  };
}
