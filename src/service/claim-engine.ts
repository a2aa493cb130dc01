// Runs one claim end to end: campaign lookup, the Idempotency-Key protocol, the activity
// window, a lottery's draw (and redraws when the drawn prize's last unit went to someone else)
// and the campaign's strategy, which owns its transaction and its retries. Business refusals
// are answers; infrastructure failures are thrown (and answered 503 by the HTTP layer).
import { isActive, type Campaign } from '../core/campaign.ts';
import { claimView, utcDay, type Claim } from '../core/claim.ts';
import { canonicalCandidates, drawValue, pickPrize, type DrawAttempt } from '../core/lottery.ts';
import { AllotError, errorBody, type ErrorCode } from '../core/errors.ts';
import { fingerprint, type StoredResponse } from '../core/idempotency.ts';
import type { ClaimStore, ClaimTx, StockUnit } from '../ports/claim-store.ts';
import type { ClaimStrategy, StrategyOutcome, StrategyStats } from '../ports/claim-strategy.ts';
import type { Clock, IdSource } from '../ports/clock.ts';
import type { IdempotencyProtocol, IdempotencyScope } from './idempotency.ts';

export type ClaimResult = 'issued' | 'sold_out' | 'user_limit' | 'not_active' | 'not_found' | 'replayed' | 'idempotency_conflict' | 'unavailable' | 'error';

export interface ClaimOutcome {
  status: number;
  body: unknown;
  /** True when the response is a stored one, replayed for a repeated Idempotency-Key. */
  replayed: boolean;
  result: ClaimResult;
  /** what the strategy reported (absent for answers that did not reach it) */
  stats?: StrategyStats;
}

export interface ClaimEngineDeps {
  store: ClaimStore;
  idempotency: IdempotencyProtocol;
  clock: Clock;
  ids: IdSource;
  strategyFor(name: string): ClaimStrategy | undefined;
  /** strategy: the campaign's, null when the claim did not get that far (campaign not found) */
  onResult?(result: ClaimResult, durationMs: number, info: { campaignId: string; strategy: string | null }): void;
}

const REFUSALS: Partial<Record<ErrorCode, ClaimResult>> = {
  SOLD_OUT: 'sold_out',
  USER_LIMIT_REACHED: 'user_limit',
  CAMPAIGN_NOT_ACTIVE: 'not_active',
  CAMPAIGN_NOT_FOUND: 'not_found',
};

const CACHE_LIMIT = 10_000;
/** How long a campaign's settings (pause included) and a "sold out" are trusted without asking
 * the store: a pause or an added unit made on another instance is seen within this time. */
const CACHE_TTL_MS = 1_000;
/** Draw attempts of one lottery claim before falling back: each lost race removes a prize. */
export const MAX_DRAW_ATTEMPTS = 5;

/** The draw record stored with a lottery claim: what GET /v1/claims/:id/proof shows. */
export interface DrawRecord {
  attempts: DrawAttempt[];
  fallback: boolean;
}

interface Decided {
  response: StoredResponse;
  value: { result: ClaimResult; stats?: StrategyStats };
}

export class ClaimEngine {
  // Settings of a campaign (not its stock, which the store decides), each with its expiry.
  private readonly campaigns = new Map<string, { campaign: Campaign; until: number }>();
  // Units (a campaign's stock, or a prize's) seen sold out, until when to believe it.
  private readonly soldOut = new Map<string, number>();
  // A lottery's secret seed never changes.
  private readonly seeds = new Map<string, string>();

  constructor(private readonly deps: ClaimEngineDeps) {}

  async claim(campaignId: string, userId: string, idempotencyKey: string | null, signal?: AbortSignal): Promise<ClaimOutcome> {
    const started = performance.now();
    let result: ClaimResult = 'error';
    const seen: { strategy: string | null } = { strategy: null };
    try {
      const out = await this.run(campaignId, userId, idempotencyKey, signal, seen);
      result = out.result;
      return out;
    } catch (err) {
      result = err instanceof AllotError && err.code === 'UNAVAILABLE' ? 'unavailable' : 'error';
      throw err;
    } finally {
      this.deps.onResult?.(result, performance.now() - started, { campaignId, strategy: seen.strategy });
    }
  }

  /** Forget what this engine knows of a campaign (after a pause, a resume or added stock here). */
  invalidate(campaignId: string): void {
    this.campaigns.delete(campaignId);
    for (const k of this.soldOut.keys()) if (k === campaignId || k.startsWith(`${campaignId}\u0000`)) this.soldOut.delete(k);
  }

  private async campaign(id: string): Promise<Campaign | null> {
    const hit = this.campaigns.get(id);
    if (hit && hit.until > performance.now()) return hit.campaign;
    // Trusted for the TTL from when it was asked for, not answered: a read that waited seconds
    // for a pooled connection must not keep a pause (or a resume) past the promised second.
    const asked = performance.now();
    const c = await this.deps.store.getCampaign(id);
    if (c) {
      if (this.campaigns.size >= CACHE_LIMIT) this.campaigns.clear();
      this.campaigns.set(id, { campaign: c, until: asked + CACHE_TTL_MS });
      if (c.kind === 'coupon' && c.issued >= c.stock) this.markSoldOut({ campaignId: id, prizeId: null });
    }
    return c;
  }

  private unitKey(u: StockUnit): string {
    return u.prizeId === null ? u.campaignId : `${u.campaignId}\u0000${u.prizeId}`;
  }

  private isSoldOut(u: StockUnit): boolean {
    const until = this.soldOut.get(this.unitKey(u));
    return until !== undefined && until > performance.now();
  }

  private markSoldOut(u: StockUnit): void {
    if (this.soldOut.size >= CACHE_LIMIT) this.soldOut.clear();
    this.soldOut.set(this.unitKey(u), performance.now() + CACHE_TTL_MS);
  }

  private async run(campaignId: string, userId: string, key: string | null, signal: AbortSignal | undefined, seen: { strategy: string | null }): Promise<ClaimOutcome> {
    const campaign = await this.campaign(campaignId);
    if (!campaign) return { ...refusal('CAMPAIGN_NOT_FOUND').response, replayed: false, result: 'not_found' };
    seen.strategy = campaign.strategy;
    const fp = fingerprint('claim', { campaignId, userId });
    // A strategy that inserts the key in its own transaction spares the separate take.
    const deferBegin = this.deps.strategyFor(campaign.strategy)?.takesKeys === true;
    const out = await this.deps.idempotency.run(campaignId, key, fp, (scope) => this.decide(campaign, userId, scope, signal), { deferBegin });
    if (out.kind === 'refused') return { status: out.answer.status, body: out.answer.body, replayed: false, result: 'idempotency_conflict' };
    const { status, body, replayed } = out.answer;
    if (replayed || out.value === null) return { status, body, replayed: true, result: 'replayed' };
    return { status, body, replayed: false, result: out.value.result, ...(out.value.stats ? { stats: out.value.stats } : {}) };
  }

  private async decide(campaign: Campaign, userId: string, scope: IdempotencyScope, signal?: AbortSignal): Promise<Decided> {
    const { key, completeIn, pending } = scope;
    const now = this.deps.clock.now();
    if (!isActive(campaign, now)) return refusal('CAMPAIGN_NOT_ACTIVE');
    const strategy = this.deps.strategyFor(campaign.strategy);
    if (!strategy) {
      // A rolling deploy: a newer instance created the campaign with a strategy this one does
      // not know. Another instance can serve it; this one changes nothing.
      throw new AllotError('UNAVAILABLE', `This instance does not know the strategy "${campaign.strategy}" of campaign ${campaign.id} (a newer release created it); nothing was issued. Retry: an instance running that release can serve it.`, { outcome: 'nothing-issued', strategy: campaign.strategy });
    }
    const claimId = this.deps.ids.next('clm_');
    let issued: StoredResponse | null = null;
    const attempt = (unit: StockUnit | null, draw: DrawRecord | null): Promise<StrategyOutcome> =>
      strategy.claim(this.deps.store, {
        campaign,
        userId,
        claimId,
        nowMs: now,
        day: utcDay(now),
        idempotencyKey: key,
        unit,
        draw: draw === null ? null : JSON.stringify(draw),
        ...(signal ? { signal } : {}),
        // Until a store took the key (the first attempt that reached one did).
        ...(pending?.result === 'pending' ? { pendingKey: pending } : {}),
        beforeCommit: async (tx: ClaimTx, c: Claim) => {
          issued = { status: 201, body: { claim: claimView(c) } };
          await completeIn(tx, issued, c.id);
        },
      });
    try {
      const o = campaign.kind === 'lottery' ? await this.draw(campaign, claimId, attempt) : await this.coupon(campaign, attempt);
      if (o === null || o.kind === 'sold_out') return { ...refusal('SOLD_OUT'), value: { result: 'sold_out', ...(o ? { stats: o.stats } : {}) } };
      if (o.kind === 'user_limit') return { ...refusal('USER_LIMIT_REACHED'), value: { result: 'user_limit', stats: o.stats } };
      // The same object the transaction stored, so the protocol does not store it again.
      const response = issued ?? { status: 201, body: { claim: claimView(o.claim) } };
      return { response, value: { result: 'issued', stats: o.stats } };
    } catch (err) {
      // A strategy may learn of a refusal from the store (a campaign gone): an answer, not a failure.
      if (err instanceof AllotError && REFUSALS[err.code] !== undefined) return refusal(err.code);
      throw err;
    }
  }

  private async coupon(campaign: Campaign, attempt: (unit: StockUnit | null, draw: DrawRecord | null) => Promise<StrategyOutcome>): Promise<StrategyOutcome | null> {
    const unit = { campaignId: campaign.id, prizeId: null };
    if (this.isSoldOut(unit)) return null;
    const o = await attempt(unit, null);
    if (o.kind === 'sold_out') this.markSoldOut(unit);
    return o;
  }

  /** A lottery draw: pick by weight among prizes with stock (and the miss), claim the pick; a
   * prize whose last unit went to someone else meanwhile is left out of the next attempt; after
   * MAX_DRAW_ATTEMPTS, or when no prize is left, the fallback prize, else SOLD_OUT (null). */
  private async draw(campaign: Campaign, claimId: string, attempt: (unit: StockUnit | null, draw: DrawRecord | null) => Promise<StrategyOutcome>): Promise<StrategyOutcome | null> {
    const seed = await this.seedOf(campaign.id);
    const attempts: DrawAttempt[] = [];
    const lost = new Set<string>();
    let last: StrategyOutcome | null = null;
    for (let n = 1; n <= MAX_DRAW_ATTEMPTS; n++) {
      const prizes = (await this.deps.store.listPrizes(campaign.id)).filter((p) => !lost.has(p.id) && !this.isSoldOut({ campaignId: campaign.id, prizeId: p.id }));
      const candidates = canonicalCandidates(prizes.map((p) => ({ id: p.id, weight: p.weight, remaining: p.stock - p.issued })), campaign.missWeight);
      const { value, hmac } = drawValue(seed, claimId, n);
      // Only misses left: the pool is spent; a guaranteed miss would only burn the user's limit.
      // Recorded as an attempt over no prize, which picks nothing: the proof of the fallback that
      // follows then verifies ("could pick nothing"; with no attempt at all it would not).
      if (!candidates.some((c) => c.prizeId !== null)) {
        attempts.push({ attempt: n, candidates: [], value, hmac, picked: null });
        break;
      }
      const picked = pickPrize(candidates, value);
      if (picked === null) break;
      const rec: DrawAttempt = { attempt: n, candidates, value, hmac, picked: picked.prizeId };
      attempts.push(rec);
      const unit = picked.prizeId === null ? null : { campaignId: campaign.id, prizeId: picked.prizeId };
      last = await attempt(unit, { attempts, fallback: false });
      if (last.kind !== 'sold_out') return last;
      rec.lostRace = true;
      lost.add(picked.prizeId!);
      this.markSoldOut(unit!);
    }
    const fallback = campaign.fallbackPrizeId;
    if (fallback !== null) {
      const unit = { campaignId: campaign.id, prizeId: fallback };
      if (!this.isSoldOut(unit)) {
        last = await attempt(unit, { attempts, fallback: true });
        if (last.kind === 'sold_out') this.markSoldOut(unit);
      }
    }
    return last;
  }

  private async seedOf(campaignId: string): Promise<string> {
    const hit = this.seeds.get(campaignId);
    if (hit) return hit;
    const s = await this.deps.store.getSeed(campaignId);
    if (!s) throw new Error(`lottery campaign ${campaignId} has no seed`);
    if (this.seeds.size >= CACHE_LIMIT) this.seeds.clear();
    this.seeds.set(campaignId, s.seed);
    return s.seed;
  }
}

function refusal(code: ErrorCode): Decided {
  return { response: { status: new AllotError(code).status, body: errorBody(code) }, value: { result: REFUSALS[code] ?? 'error' } };
}
