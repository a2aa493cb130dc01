// Page size from a validated query string (digits only): default 100, at most 1000.
import { AllotError } from '../../core/errors.ts';

export function pageLimit(raw: string | undefined): number {
  if (raw === undefined) return 100;
  const n = Number(raw);
  if (n < 1 || n > 1000) throw new AllotError('VALIDATION_FAILED', 'querystring/limit: must be from 1 to 1000', { field: 'limit' });
  return n;
}
