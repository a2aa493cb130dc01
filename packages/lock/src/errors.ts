// Typed lock errors: each names its cause and carries a stable `code` for callers and HTTP mapping.

export const LockErrorCode = Object.freeze({
  timeout: 'LOCK_TIMEOUT',
  lost: 'LOCK_LOST',
  notOwner: 'LOCK_NOT_OWNER',
  backend: 'LOCK_BACKEND',
  aborted: 'LOCK_ABORTED',
  validity: 'LOCK_VALIDITY',
  fenceExhausted: 'LOCK_FENCE_EXHAUSTED',
  staleFence: 'LOCK_STALE_FENCE',
} as const);
export type LockErrorCode = (typeof LockErrorCode)[keyof typeof LockErrorCode];

export abstract class LockError extends Error {
  abstract readonly code: LockErrorCode;
  readonly key: string;
  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.key = key;
  }
}

export class LockTimeoutError extends LockError {
  readonly code = LockErrorCode.timeout;
  override readonly name = 'LockTimeoutError';
  constructor(key: string, readonly timeoutMs: number, readonly attempts: number) {
    super(key, `lock "${key}" not acquired within ${timeoutMs} ms (${attempts} attempts)`);
  }
}

export class LockLostError extends LockError {
  readonly code = LockErrorCode.lost;
  override readonly name = 'LockLostError';
  constructor(key: string, readonly reason: string, options?: { cause?: unknown }) {
    super(key, `lock "${key}" lost: ${reason}`, options);
  }
}

export class NotOwnerError extends LockError {
  readonly code = LockErrorCode.notOwner;
  override readonly name = 'NotOwnerError';
  constructor(key: string, readonly ownerId: string) {
    super(key, `lock "${key}" is held by another owner; ${ownerId} may not release or extend it`);
  }
}

export class LockBackendError extends LockError {
  readonly code = LockErrorCode.backend;
  override readonly name = 'LockBackendError';
  /** true when retrying cannot help (see permanentBackendCause): the provider fails at once */
  readonly permanent: boolean;
  constructor(key: string, operation: string, cause: unknown) {
    const why = permanentBackendCause(cause);
    super(key, `lock backend failed during ${operation} of "${key}": ${describe(cause)}${why ? ` (not retried: ${why})` : ''}`, { cause });
    this.permanent = why !== undefined;
  }
}

/**
 * Backend replies that cannot succeed on retry, with what to check. The one place errors are
 * classified: a LockBackendError whose cause matches is `permanent`, and the provider throws it at
 * once instead of retrying until timeoutMs. Transient replies (READONLY, LOADING, BUSY,
 * MASTERDOWN, CLUSTERDOWN, TRYAGAIN, connection errors) are deliberately absent.
 */
const PERMANENT_CAUSES: readonly (readonly [RegExp, string])[] = [
  [/\bunknown (sub)?command\b/i, 'the Redis server or client lacks a command the lock library needs (EVALSHA, EVAL, SCRIPT LOAD, PUBLISH, SUBSCRIBE, TIME); check the server version and renamed or disabled commands'],
  [/\bNOSCRIPT\b/, 'the script was still unknown right after SCRIPT LOAD: is a proxy spreading one connection over several servers?'],
  [/\b(NOPERM|NOAUTH|WRONGPASS)\b/, 'the Redis user may not run a command or touch a key the lock library needs; grant it +@scripting +publish +subscribe +time and the lock key prefix'],
  [/\bWRONGTYPE\b/, 'a key under the lock prefix holds another data type; use a prefix nothing else writes to'],
  [/subscriber mode|pub\/?sub mode|allowed in this context/i, 'the connection is in subscriber mode; give the lock provider a connection that is not used for SUBSCRIBE'],
  [/\bCROSSSLOT\b/, "the keys of one lock operation are in different hash slots"],
];

/** Why a backend failure cannot succeed on retry, or undefined when it may be transient. */
export function permanentBackendCause(cause: unknown): string | undefined {
  const text = cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : undefined;
  if (!text) return undefined;
  for (const [re, why] of PERMANENT_CAUSES) if (re.test(text)) return why;
  return undefined;
}

/** Named AbortError so generic `err.name === 'AbortError'` checks keep working. */
export class LockAbortedError extends LockError {
  readonly code = LockErrorCode.aborted;
  override readonly name = 'AbortError';
  constructor(key: string, reason?: unknown) {
    super(key, `acquisition of lock "${key}" aborted${reason === undefined ? '' : `: ${describe(reason)}`}`, { cause: reason });
  }
}

export class LockValidityError extends LockError {
  readonly code = LockErrorCode.validity;
  override readonly name = 'LockValidityError';
  constructor(key: string, readonly elapsedMs: number, readonly ttlMs: number, readonly driftMs: number) {
    super(key, `lock "${key}" refused: acquisition took ${elapsedMs} ms, more than ttl ${ttlMs} ms minus drift ${driftMs} ms`);
  }
}

export class FenceExhaustedError extends LockError {
  readonly code = LockErrorCode.fenceExhausted;
  override readonly name = 'FenceExhaustedError';
  constructor(key: string) {
    super(key, `fence counter of "${key}" exhausted for the current epoch; install a new epoch`);
  }
}

/** A store refused a write because a newer fencing token was already seen for the resource. */
export class StaleFenceError extends LockError {
  readonly code = LockErrorCode.staleFence;
  override readonly name = 'StaleFenceError';
  constructor(resource: string, readonly fence: bigint) {
    super(resource, `write to "${resource}" with fence ${fence} rejected: a newer fence was already used`);
  }
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  return String(value);
}
