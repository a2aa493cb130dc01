// Test-side fenced write: the store's raiseFence, throwing StaleFenceError as a writer would.
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import type { SqlFamily } from '../../src/adapters/sql/connect.ts';
import { raiseFence, type FenceDb } from '../../src/adapters/sql/sql-fences.ts';
import { StaleFenceError } from '../../packages/lock/src/errors.ts';

export async function checkFence(db: FenceDb, family: SqlFamily, resource: string, fence: bigint, opts: { onRejected?: () => void } = {}): Promise<void> {
  if (await raiseFence(db, sqlDialect(family), resource, fence)) return;
  opts.onRejected?.();
  throw new StaleFenceError(resource, fence);
}
