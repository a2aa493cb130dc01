// Lock defaults in one frozen object (units in names), overridable per call.

export interface LockDefaults {
  ttlMs: number;
  timeoutMs: number;
  fair: boolean;
  autoExtend: boolean;
  waiterTtlMs: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  driftFactor: number;
  driftConstantMs: number;
}

export const DEFAULT_LOCK_OPTIONS: Readonly<LockDefaults> = Object.freeze({
  /** lease duration; the watchdog renews at ttlMs / 3 */
  ttlMs: 30_000,
  /** how long acquire() waits before LockTimeoutError */
  timeoutMs: 10_000,
  /** FIFO: only the head of the waiter queue may take a free lock (default: barging allowed) */
  fair: false,
  /** renew the lease in the background (always on inside using()) */
  autoExtend: false,
  /** lease of a waiter's queue entry; refreshed every waiterTtlMs / 3 while it waits */
  waiterTtlMs: 3_000,
  /** fallback polling when pub/sub is unavailable: full jitter between 0 and min(max, base * 2^n) */
  retryBaseDelayMs: 5,
  retryMaxDelayMs: 250,
  /** validity: a lease is refused if acquisition took longer than ttl - (ttl * driftFactor + driftConstantMs) */
  driftFactor: 0.01,
  driftConstantMs: 2,
});

export interface AcquireOptions extends Partial<LockDefaults> {
  signal?: AbortSignal;
  /** the owner identity stored with the lock (default: a fresh unique id per acquisition). Choose
   * it to hand the lock over: another process continues it with provider.adopt(key, { identifier }).
   * It must be unique per holder: two acquisitions with the same identifier are the same holder. */
  identifier?: string;
  /** how often the watchdog renews (autoExtend, using()); default ttlMs / 3; must stay below ttlMs minus drift */
  renewIntervalMs?: number;
}

export interface ResolvedAcquireOptions extends LockDefaults {
  signal: AbortSignal | undefined;
  identifier: string | undefined;
  renewIntervalMs: number | undefined;
}

/** provider.adopt(): continue a lock another process acquired with a chosen identifier. */
export interface AdoptOptions {
  /** the identifier the lock was acquired with */
  identifier: string;
  /** the fence of that acquisition, if the acquirer passed it along: adoption is refused when the
   * lock now held under the identifier is a different (later) acquisition */
  fence?: bigint;
  /** the adopted lease's TTL, set at once (default: the provider's ttlMs) */
  ttlMs?: number;
  autoExtend?: boolean;
  renewIntervalMs?: number;
  signal?: AbortSignal;
}

export function resolveOptions(defaults: LockDefaults, opts: AcquireOptions | undefined): ResolvedAcquireOptions {
  // Field by field (no spread, no for-in): one object shape, and this runs on every acquire.
  const d = defaults;
  const o: ResolvedAcquireOptions = opts
    ? {
        ttlMs: opts.ttlMs ?? d.ttlMs,
        timeoutMs: opts.timeoutMs ?? d.timeoutMs,
        fair: opts.fair ?? d.fair,
        autoExtend: opts.autoExtend ?? d.autoExtend,
        waiterTtlMs: opts.waiterTtlMs ?? d.waiterTtlMs,
        retryBaseDelayMs: opts.retryBaseDelayMs ?? d.retryBaseDelayMs,
        retryMaxDelayMs: opts.retryMaxDelayMs ?? d.retryMaxDelayMs,
        driftFactor: opts.driftFactor ?? d.driftFactor,
        driftConstantMs: opts.driftConstantMs ?? d.driftConstantMs,
        signal: opts.signal,
        identifier: opts.identifier,
        renewIntervalMs: opts.renewIntervalMs,
      }
    : {
        ttlMs: d.ttlMs,
        timeoutMs: d.timeoutMs,
        fair: d.fair,
        autoExtend: d.autoExtend,
        waiterTtlMs: d.waiterTtlMs,
        retryBaseDelayMs: d.retryBaseDelayMs,
        retryMaxDelayMs: d.retryMaxDelayMs,
        driftFactor: d.driftFactor,
        driftConstantMs: d.driftConstantMs,
        signal: undefined,
        identifier: undefined,
        renewIntervalMs: undefined,
      };
  if (!Number.isInteger(o.ttlMs) || o.ttlMs < 1) throw new RangeError(`ttlMs must be a positive integer, got ${o.ttlMs}`);
  if (!(o.timeoutMs >= 0)) throw new RangeError(`timeoutMs must be >= 0, got ${o.timeoutMs}`);
  if (!Number.isInteger(o.waiterTtlMs) || o.waiterTtlMs < 3) throw new RangeError(`waiterTtlMs must be an integer >= 3, got ${o.waiterTtlMs}`);
  if (o.identifier !== undefined) checkIdentifier(o.identifier);
  if (o.renewIntervalMs !== undefined) checkRenewInterval(o.renewIntervalMs, o.ttlMs, o);
  return o;
}

export function checkIdentifier(id: unknown): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > 1024) throw new TypeError(`identifier must be a non-empty string of at most 1024 characters, got ${typeof id === 'string' ? `${id.length} characters` : typeof id}`);
}

/** The watchdog must renew before the lease's own deadline (ttl minus drift), or it renews a lost lease. */
export function checkRenewInterval(ms: number, ttlMs: number, o: Pick<LockDefaults, 'driftFactor' | 'driftConstantMs'>): void {
  const limit = ttlMs - driftMs(ttlMs, o);
  if (!Number.isInteger(ms) || ms < 1 || ms >= limit) throw new RangeError(`renewIntervalMs must be an integer between 1 and ${limit - 1} (ttlMs ${ttlMs} minus drift), got ${ms}`);
}

export function driftMs(ttlMs: number, o: Pick<LockDefaults, 'driftFactor' | 'driftConstantMs'>): number {
  return Math.floor(ttlMs * o.driftFactor) + o.driftConstantMs;
}
