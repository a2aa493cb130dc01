// Prometheus metrics of one service instance, in a registry of its own (never the global one,
// so several instances in one process, as in tests, do not collide).
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ClaimResult } from './claim-engine.ts';

export interface ServiceMetrics {
  registry: Registry;
  observeClaim(result: ClaimResult, durationMs: number): void;
  observeHttp(method: string, route: string, status: number, durationMs: number): void;
  /** a transfer order reached a state */
  observeTransfer(state: string): void;
  /** a background payout task (executor, recovery sweep) failed */
  observePayoutError(): void;
}

export function createMetrics(): ServiceMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'allot_process_' });
  const claims = new Counter({
    name: 'allot_claims_total',
    help: 'Claims by result: issued, or refused by reason (sold_out, user_limit, not_active, not_found, replayed, idempotency_conflict, unavailable, error).',
    labelNames: ['result'],
    registers: [registry],
  });
  const claimSeconds = new Histogram({
    name: 'allot_claim_duration_seconds',
    help: 'Time to decide one claim, by result.',
    labelNames: ['result'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const http = new Histogram({
    name: 'allot_http_request_duration_seconds',
    help: 'HTTP requests by method, route and status code.',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const transfers = new Counter({
    name: 'allot_transfer_transitions_total',
    help: 'Transfer orders reaching a state on this instance (received, executing, succeeded, failed, unknown). Orders waiting for a person: GET /v1/transfers?state=unknown.',
    labelNames: ['state'],
    registers: [registry],
  });
  const payoutErrors = new Counter({
    name: 'allot_payout_background_errors_total',
    help: 'Errors in the transfer executor or its recovery sweep (each is logged; the order is retried by the next sweep).',
    registers: [registry],
  });
  return {
    registry,
    observeTransfer(state) {
      transfers.inc({ state });
    },
    observePayoutError() {
      payoutErrors.inc();
    },
    observeClaim(result, durationMs) {
      claims.inc({ result });
      claimSeconds.observe({ result }, durationMs / 1000);
    },
    observeHttp(method, route, status, durationMs) {
      http.observe({ method, route, status: String(status) }, durationMs / 1000);
    },
  };
}
