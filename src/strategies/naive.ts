// `naive` (UNSAFE, race lab only): the seeds' first version. Read the stock, read the user's
// count, then decrement and insert as separate statements with no transaction around them.
// Two requests that both read "1 left" (or "no claim yet") both win. On the production schema
// the CHECK (issued <= stock) still refuses the oversell as a database error, which is
// answered SOLD_OUT; the lab runs it on a schema without that backstop to show the oversell.
import type { ClaimStore, ClaimTx } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import { AllotError } from '../core/errors.ts';
import type { StrategyDeps } from './deps.ts';
import { newClaim } from './outcome.ts';

/** The read-check-write sequence shared by `naive` and `local-mutex`. */
export async function naiveClaim(tx: ClaimTx, req: ClaimRequest, thinkMs: number): Promise<StrategyOutcome> {
  const { campaign, userId, day } = req;
  const stats = { retries: 0 };
  if (req.unit) {
    const row = await tx.readStock(req.unit);
    if (row === null) throw new AllotError('CAMPAIGN_NOT_FOUND');
    if (row.issued >= row.stock) return { kind: 'sold_out', stats };
  }
  const counter = await tx.readUserCounter(campaign.id, userId, day);
  // The counter's day never moves backwards (see ClaimTx.guardUser): a late commit counts in it.
  const effectiveDay = counter.day > day ? counter.day : day;
  const dayCount = counter.day === effectiveDay ? counter.dayCount : 0;
  if (counter.total >= campaign.perUserLimit) return { kind: 'user_limit', stats };
  if (campaign.perUserDailyLimit !== null && dayCount >= campaign.perUserDailyLimit) return { kind: 'user_limit', stats };
  // The seeds' business logic between the check and the write ("build the claim record").
  if (thinkMs > 0) await new Promise((r) => setTimeout(r, thinkMs));
  if (req.unit && !(await tx.addIssued(req.unit, 1))) return { kind: 'sold_out', stats };
  const claim = newClaim(req);
  await tx.insertClaim(claim, effectiveDay, req.idempotencyKey, req.draw);
  // Written from what was read: a concurrent claim of the same user is a lost update.
  await tx.writeUserCounter(campaign.id, userId, { total: counter.total + 1, day: effectiveDay, dayCount: dayCount + 1 });
  await req.beforeCommit(tx, claim);
  return { kind: 'issued', claim, stats };
}

export function createNaive(deps: StrategyDeps): ClaimStrategy {
  const thinkMs = deps.unsafeThinkMs ?? 0;
  return {
    name: 'naive',
    safe: false,
    claim: (store: ClaimStore, req: ClaimRequest) => store.autocommit((tx) => naiveClaim(tx, req, thinkMs)),
  };
}
