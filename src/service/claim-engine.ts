// Runs one claim end to end: campaign lookup, Idempotency-Key protocol, activity window,
// the campaign's strategy (retried on deadlocks), and the response every path stores under
// the key. Business refusals are outcomes; infrastructure failures are thrown.
import { isActive, type Campaign } from '../core/campaign.ts';
import { claimView, utcDay, type Claim } from '../core/claim.ts';
import { AllotError, errorBody, TransientConflictError, type ErrorCode } from '../core/errors.ts';
import { fingerprint, type StoredResponse } from '../core/idempotency.ts';
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimStrategy } from '../ports/claim-strategy.ts';
import type { Clock, IdSource } from '../ports/clock.ts';

export type ClaimResult = 'issued' | 'sold_out' | 'user_limit' | 'not_active' | 'not_found' | 'replayed' | 'idempotency_conflict' | 'unavailable' | 'error';

export interface ClaimOutcome {
  status: number;
  body: unknown;
  /** True when the response is a stored one, replayed for a repeated Idempotency-Key. */
  replayed: boolean;
  result: ClaimResult;
}

export interface ClaimEngineDeps {
  store: ClaimStore;
  clock: Clock;
  ids: IdSource;
  strategyFor(name: string): ClaimStrategy | undefined;
  /** How long a request owns its Idempotency-Key before a retry may take it over. */
  idempotencyLeaseMs?: number;
  /** Attempts for a transaction that the database rolled back on a deadlock. */
  maxAttempts?: number;
  onResult?(result: ClaimResult, durationMs: number): void;
}

const REFUSALS: Partial<Record<ErrorCode, ClaimResult>> = {
  SOLD_OUT: 'sold_out',
  USER_LIMIT_REACHED: 'user_limit',
  CAMPAIGN_NOT_ACTIVE: 'not_active',
  CAMPAIGN_NOT_FOUND: 'not_found',
};

const CACHE_LIMIT = 10_000;

export class ClaimEngine {
  // Only the immutable part of a campaign is cached; stock is always decided by the store.
  private readonly campaigns = new Map<string, Campaign>();
  // Stock never grows, so "sold out" once seen stays true: later claims skip the database.
  private readonly soldOut = new Set<string>();
  private readonly leaseMs: number;
  private readonly maxAttempts: number;

  constructor(private readonly deps: ClaimEngineDeps) {
    this.leaseMs = deps.idempotencyLeaseMs ?? 10_000;
    this.maxAttempts = deps.maxAttempts ?? 8;
  }

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
    const { store, clock, ids } = this.deps;
    const campaign = await this.campaign(campaignId);
    if (!campaign) return refusal('CAMPAIGN_NOT_FOUND');

    const owner = ids.next('req_');
    if (key !== null) {
      const fp = fingerprint('claim', { campaignId, userId });
      const begun = await store.beginIdempotency(campaignId, key, fp, owner, clock.now(), this.leaseMs);
      if (begun.state === 'mismatch') return refusal('IDEMPOTENCY_KEY_REUSED', 'idempotency_conflict');
      if (begun.state === 'busy') return refusal('IDEMPOTENCY_IN_PROGRESS', 'idempotency_conflict');
      if (begun.state === 'done' && begun.response) {
        return { status: begun.response.status, body: begun.response.body, replayed: true, result: 'replayed' };
      }
    }

    let outcome: ClaimOutcome;
    try {
      outcome = await this.decide(campaign, userId, key, owner, signal);
    } catch (err) {
      // Our key lease ran out and a retry took the key over: our transaction rolled back, the
      // retry decides the outcome, and the key is no longer ours to touch.
      if (err instanceof AllotError && err.code === 'IDEMPOTENCY_IN_PROGRESS') return refusal('IDEMPOTENCY_IN_PROGRESS', 'idempotency_conflict');
      // Nothing was issued (or, for an unknown commit outcome, the key settles it): give the key
      // back so a retry runs at once, unless the outcome is unknown.
      const unknown = err instanceof AllotError && err.details?.outcome === 'unknown';
      if (key !== null && !unknown) await store.abandonIdempotency(campaignId, key, owner).catch(() => undefined);
      throw err;
    }
    if (key !== null && outcome.status !== 201) {
      await store.completeIdempotency(campaignId, key, owner, { status: outcome.status, body: outcome.body }, null);
    }
    return outcome;
  }

  private async decide(campaign: Campaign, userId: string, key: string | null, owner: string, signal?: AbortSignal): Promise<ClaimOutcome> {
    const { store, clock, ids } = this.deps;
    const now = clock.now();
    if (!isActive(campaign, now)) return refusal('CAMPAIGN_NOT_ACTIVE');
    if (this.soldOut.has(campaign.id)) return refusal('SOLD_OUT');
    const strategy = this.deps.strategyFor(campaign.strategy);
    if (!strategy) throw new Error(`campaign ${campaign.id} names unknown strategy "${campaign.strategy}"`);

    const claimId = ids.next('clm_');
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        const claim = await strategy.claim(store, {
          campaign,
          userId,
          claimId,
          nowMs: now,
          day: utcDay(now),
          idempotencyKey: key,
          signal,
          onCommit: async (tx, c: Claim) => {
            if (key !== null) await tx.completeIdempotency(campaign.id, key, owner, { status: 201, body: { claim: claimView(c) } }, c.id);
          },
        });
        return { status: 201, body: { claim: claimView(claim) }, replayed: false, result: 'issued' };
      } catch (err) {
        if (err instanceof AllotError && REFUSALS[err.code] !== undefined) {
          if (err.code === 'SOLD_OUT') this.soldOut.add(campaign.id);
          return refusal(err.code);
        }
        if (err instanceof TransientConflictError) {
          if (attempt < this.maxAttempts) {
            await sleep(Math.random() * 5 * attempt);
            continue;
          }
          throw new AllotError('UNAVAILABLE', 'The claim kept conflicting with others and was rolled back each time; nothing was issued.', { outcome: 'nothing-issued' }, { cause: err });
        }
        throw err;
      }
    }
  }
}

function refusal(code: ErrorCode, result?: ClaimResult): ClaimOutcome {
  const e = new AllotError(code);
  const stored: StoredResponse = { status: e.status, body: errorBody(code) };
  return { ...stored, replayed: false, result: result ?? REFUSALS[code] ?? 'error' };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
