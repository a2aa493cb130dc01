// Driver errors become the ports' errors: retry the transaction, or the database is down (503,
// nothing issued). Every store method runs through `guarded`.
import { AllotError, TransientConflictError } from '../../core/errors.ts';
import { isRetryable, isUnavailable } from './errors.ts';

export function translate(err: unknown): unknown {
  if (err instanceof AllotError || err instanceof TransientConflictError) return err;
  if (isRetryable(err)) return new TransientConflictError(err);
  if (isUnavailable(err)) return new AllotError('UNAVAILABLE', undefined, { outcome: 'nothing-issued' }, { cause: err });
  return err;
}

export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw translate(err);
  }
}
