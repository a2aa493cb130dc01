// Observer hooks for lock metrics; every method is optional so callers implement what they chart.

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
