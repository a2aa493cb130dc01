// `local-mutex` (UNSAFE across instances, race lab only): the naive sequence inside an
// in-process mutex per campaign, the seeds' `synchronized` / `sync.Mutex`. It holds in one
// process and serializes every claim there; a second process has its own mutex, so two
// instances race exactly like `naive`.
import type { ClaimStore } from '../ports/claim-store.ts';
import type { ClaimRequest, ClaimStrategy, StrategyOutcome } from '../ports/claim-strategy.ts';
import type { StrategyDeps } from './deps.ts';
import { naiveClaim } from './naive.ts';

export function createLocalMutex(deps: StrategyDeps): ClaimStrategy {
  const thinkMs = deps.unsafeThinkMs ?? 0;
  // The tail of each campaign's queue; an entry is dropped when its queue drains.
  const tails = new Map<string, Promise<unknown>>();
  return {
    name: 'local-mutex',
    safe: false,
    async claim(store: ClaimStore, req: ClaimRequest): Promise<StrategyOutcome> {
      const id = req.campaign.id;
      const prev = tails.get(id) ?? Promise.resolve();
      const run = prev.then(() => store.autocommit((tx) => naiveClaim(tx, req, thinkMs)));
      const tail = run.catch(() => undefined);
      tails.set(id, tail);
      try {
        return await run;
      } finally {
        if (tails.get(id) === tail) tails.delete(id);
      }
    },
  };
}
