// Binds LockMetrics to a prom-client Registry the caller owns (the service exposes it on /metrics).
import { Counter, Histogram, type Registry } from 'prom-client';
import type { LockMetrics } from './metrics.ts';

const SECONDS_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function registerLockMetrics(registry: Registry, opts: { prefix?: string } = {}): LockMetrics {
  const p = opts.prefix ?? 'allot_lock_';
  const registers = [registry];
  const acquire = new Histogram({ name: `${p}acquire_seconds`, help: 'Lock acquisition latency', labelNames: ['backend', 'fair'], buckets: SECONDS_BUCKETS, registers });
  const wait = new Histogram({ name: `${p}wait_seconds`, help: 'Time spent waiting between acquisition attempts', labelNames: ['backend'], buckets: SECONDS_BUCKETS, registers });
  const handover = new Histogram({ name: `${p}handover_seconds`, help: 'Release to next holder, within one process', labelNames: ['backend'], buckets: SECONDS_BUCKETS, registers });
  const renewals = new Counter({ name: `${p}renewals_total`, help: 'Successful lease renewals', labelNames: ['backend'], registers });
  const renewFailures = new Counter({ name: `${p}renew_failures_total`, help: 'Failed lease renewal attempts', labelNames: ['backend'], registers });
  const losses = new Counter({ name: `${p}losses_total`, help: 'Leases lost or no longer provable', labelNames: ['backend'], registers });
  const timeouts = new Counter({ name: `${p}timeouts_total`, help: 'Acquisitions that timed out', labelNames: ['backend'], registers });
  const fenceRejections = new Counter({ name: `${p}fence_rejections_total`, help: 'Writes refused for a stale fencing token', registers });
  return {
    acquired: (e) => {
      acquire.observe({ backend: e.backend, fair: String(e.fair) }, e.latencyMs / 1000);
      wait.observe({ backend: e.backend }, e.waitMs / 1000);
    },
    handover: (e) => handover.observe({ backend: e.backend }, e.latencyMs / 1000),
    renewed: (e) => renewals.inc({ backend: e.backend }),
    renewFailed: (e) => renewFailures.inc({ backend: e.backend }),
    lost: (e) => losses.inc({ backend: e.backend }),
    timedOut: (e) => timeouts.inc({ backend: e.backend }),
    fenceRejected: () => fenceRejections.inc(),
  };
}
