// Runs one claim end to end: campaign lookup, the Idempotency-Key protocol, the activity
// window and the campaign's strategy, which owns its transaction and its retries. Business
// refusals are answers; infrastructure failures are thrown (and answered 503 by the HTTP layer).
import { isActive, type Campaign } from '../core/campaign.ts';
import { claimView, utcDay } from '../core/claim.ts';
import { AllotError, errorBody, type ErrorCode } from '../core/errors.ts';
import { fingerprint, type StoredResponse } from '../core/idempotency.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimStrategy, StrategyStats } from '../ports/claim-strategy.ts';
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
  onResult?(result: ClaimResult, durationMs: number): void;
}

const REFUSALS: Partial<Record<ErrorCode, ClaimResult>> = {
  SOLD_OUT: 'sold_out',
  USER_LIMIT_REACHED: 'user_limit',
  CAMPAIGN_NOT_ACTIVE: 'not_active',
  CAMPAIGN_NOT_FOUND: 'not_found',
};

const CACHE_LIMIT = 10_000;

interface Decided {
  response: StoredResponse;
  value: { result: ClaimResult; stats?: StrategyStats };
}

export class ClaimEngine {
  // Only the immutable part of a campaign is cached; stock is always decided by the store.
  private readonly campaigns = new Map<string, Campaign>();
  // Stock never shrinks below issued and never grows back here, so "sold out" once seen stays
  // true for this engine: later claims skip the database.
  private readonly soldOut = new Set<string>();

  constructor(private readonly deps: ClaimEngineDeps) {}

  async claim(campaignId: string, userId: string, idempotencyKey: string | null, signal?: AbortSignal): Promise<ClaimOutcome> {
    const started = performance.now();
    let result: ClaimResult = 'error';
    try {
      const out = await this.run(campaignId, userId, idempotencyKey, signal);
      result = out.result;
      return out;
    } catch (err) {
      result = err instanceof AllotError && err.code === 'UNAVAILABLE' ? 'unavailable' : 'error';
      throw err;
    } finally {
      this.deps.onResult?.(result, performance.now() - started);
    }
  }

  private async campaign(id: string): Promise<Campaign | null> {
    const hit = this.campaigns.get(id);
    if (hit) return hit;
    const c = await this.deps.store.getCampaign(id);
    if (c) {
      if (this.campaigns.size >= CACHE_LIMIT) this.campaigns.clear();
      this.campaigns.set(id, c);
      if (c.issued >= c.stock) this.soldOut.add(id);
    }
    return c;
  }

  private async run(campaignId: string, userId: string, key: string | null, signal?: AbortSignal): Promise<ClaimOutcome> {
    const campaign = await this.campaign(campaignId);
    if (!campaign) return { ...refusal('CAMPAIGN_NOT_FOUND').response, replayed: false, result: 'not_found' };
    const fp = fingerprint('claim', { campaignId, userId });
    const out = await this.deps.idempotency.run(campaignId, key, fp, (scope) => this.decide(campaign, userId, scope.key, scope.completeIn, signal));
    if (out.kind === 'refused') return { status: out.answer.status, body: out.answer.body, replayed: false, result: 'idempotency_conflict' };
    const { status, body, replayed } = out.answer;
    if (replayed || out.value === null) return { status, body, replayed: true, result: 'replayed' };
    return { status, body, replayed: false, result: out.value.result, ...(out.value.stats ? { stats: out.value.stats } : {}) };
  }

  private async decide(
    campaign: Campaign,
    userId: string,
    key: string | null,
    completeIn: IdempotencyScope['completeIn'],
    signal?: AbortSignal,
  ): Promise<Decided> {
    const { store, clock, ids } = this.deps;
    const now = clock.now();
    if (!isActive(campaign, now)) return refusal('CAMPAIGN_NOT_ACTIVE');
    if (this.soldOut.has(campaign.id)) return refusal('SOLD_OUT');
    const strategy = this.deps.strategyFor(campaign.strategy);
    if (!strategy) {
      // A rolling deploy: a newer instance created the campaign with a strategy this one does
      // not know. Another instance can serve it; this one changes nothing.
      throw new AllotError('UNAVAILABLE', `This instance does not know the strategy "${campaign.strategy}" of campaign ${campaign.id} (a newer release created it); nothing was issued. Retry: an instance running that release can serve it.`, { outcome: 'nothing-issued', strategy: campaign.strategy });
    }
    let issued: StoredResponse | null = null;
    try {
      const o = await strategy.claim(store, {
        campaign,
        userId,
        claimId: ids.next('clm_'),
        nowMs: now,
        day: utcDay(now),
        idempotencyKey: key,
        ...(signal ? { signal } : {}),
        beforeCommit: async (tx, c) => {
          issued = { status: 201, body: { claim: claimView(c) } };
          await completeIn(tx, issued, c.id);
        },
      });
      if (o.kind === 'sold_out') {
        this.soldOut.add(campaign.id);
        return { ...refusal('SOLD_OUT'), value: { result: 'sold_out', stats: o.stats } };
      }
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
}

function refusal(code: ErrorCode): Decided {
  return { response: { status: new AllotError(code).status, body: errorBody(code) }, value: { result: REFUSALS[code] ?? 'error' } };
}
