// Observer hooks for lock metrics; every method is optional so callers implement what they chart.
// Hooks run inside timers and the renewal loop: guardMetrics makes every call safe.

export interface LockMetrics {
  /** an acquisition succeeded: total latency of acquire() and the part spent waiting between attempts */
  acquired?(e: { backend: string; key: string; latencyMs: number; waitMs: number; attempts: number; fair: boolean }): void;
  /** release in this process -> the next holder in this process holds it */
  handover?(e: { backend: string; key: string; latencyMs: number }): void;
  renewed?(e: { backend: string; key: string }): void;
  renewFailed?(e: { backend: string; key: string }): void;
  lost?(e: { backend: string; key: string; reason: string }): void;
  timedOut?(e: { backend: string; key: string }): void;
  /** a store refused a write carrying a stale fence */
  fenceRejected?(e: { resource: string }): void;
}

export const NOOP_LOCK_METRICS: LockMetrics = Object.freeze({});

/** Told about a hook that threw or returned a rejected promise: hook is the LockMetrics method's
 * name, or "onEvent". */
export type HookErrorHandler = (hook: string, error: unknown) => void;

export const HOOK_FAILED_WARNING = 'ALLOT_LOCK_HOOK_FAILED';

const HOOKS = ['acquired', 'handover', 'renewed', 'renewFailed', 'lost', 'timedOut', 'fenceRejected'] as const;

/**
 * Calls a hook so that nothing it does reaches the caller: a throw, or the rejection of the
 * promise an async hook returns, goes to onError instead.
 */
export function callHook(hook: string, call: () => unknown, onError: HookErrorHandler): void {
  try {
    const r = call();
    if (r !== null && typeof r === 'object' && typeof (r as PromiseLike<unknown>).then === 'function') {
      (r as PromiseLike<unknown>).then(undefined, (error: unknown) => onError(hook, error));
    }
  } catch (error) {
    onError(hook, error);
  }
}

/**
 * A reporter that passes each hook's first failure to onHookError (default: a process warning,
 * code ALLOT_LOCK_HOOK_FAILED) and drops the later ones. Never throws.
 */
export function hookErrorReporter(onHookError?: HookErrorHandler): HookErrorHandler {
  const reported = new Set<string>();
  return (hook, error) => {
    if (reported.has(hook)) return;
    reported.add(hook);
    try {
      if (onHookError) onHookError(hook, error);
      else {
        const why = error instanceof Error ? error.message : String(error);
        process.emitWarning(`lock hook "${hook}" failed: ${why}. Lock operations go on; later failures of this hook are not reported.`, { code: HOOK_FAILED_WARNING });
      }
    } catch {
      // a reporter that fails is ignored too
    }
  };
}

/** The same hooks (only those defined), each called through callHook. */
export function guardMetrics(m: LockMetrics, onError: HookErrorHandler): LockMetrics {
  const out: Record<string, (e: never) => void> = {};
  for (const name of HOOKS) {
    if (typeof m[name] !== 'function') continue;
    // Looked up at call time and called on m, as a direct call would be.
    out[name] = (e) => callHook(name, () => (m[name] as (e: unknown) => unknown).call(m, e), onError);
  }
  return out as LockMetrics;
}
