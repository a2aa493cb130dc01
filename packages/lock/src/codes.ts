// Script result codes shared by every backend (Lua scripts and the in-process store):
// >= 0 is success, negative values name the failure. One enum, one mapping to errors.
import { FenceExhaustedError, NotOwnerError, LockBackendError, type LockError } from './errors.ts';

export enum ScriptCode {
  ok = 0,
  /** held by another owner; second element is its PTTL in ms */
  locked = -1,
  /** extend/release by an id that does not hold the lock */
  notOwner = -2,
  /** the epoch key is missing: the backend lost its state, install a new epoch */
  epochMissing = -3,
  /** the lock is free but another fair waiter is at the head of the queue; second element: ms to its lease deadline */
  queued = -4,
  /** the per-key counter reached 2^40 within one epoch */
  fenceExhausted = -5,
  /** extend/release of a lock that is no longer held by anyone */
  notHeld = -6,
}

/** Maps a failure code to the error a caller sees; codes handled by control flow map to a backend error. */
export function errorForCode(code: number, key: string, ownerId: string, operation: string): LockError {
  switch (code) {
    case ScriptCode.notOwner:
    case ScriptCode.notHeld:
      return new NotOwnerError(key, ownerId);
    case ScriptCode.fenceExhausted:
      return new FenceExhaustedError(key);
    default:
      return new LockBackendError(key, operation, new Error(`unexpected script code ${code}`));
  }
}
