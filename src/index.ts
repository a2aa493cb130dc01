// allot's public library API (named exports only). The lock library (the @allot/lock package) is
// re-exported here and on its own as `allot/lock` (src/lock.ts).
export { AllotService, type ServiceOptions, type Page } from './service/service.ts';
export { loadConfig, ConfigError, SETTINGS, type Config } from './service/config.ts';
export { buildApp, type AppOptions } from './http/app.ts';
export { AllotError, ERRORS, errorBody, isAllotError, type ErrorCode } from './core/errors.ts';
export type { Campaign, CampaignView, NewCampaign } from './core/campaign.ts';
export type { Claim, ClaimView } from './core/claim.ts';
export type { ClaimOutcome, ClaimResult } from './service/claim-engine.ts';
export type { ClaimStrategy, ClaimRequest } from './ports/claim-strategy.ts';
export type { ClaimStore, ClaimTx } from './ports/claim-store.ts';
export { createStrategies, strategyNames, DEFAULT_STRATEGY } from './strategies/index.ts';
export * from '@allot/lock';
export { registerLockMetrics } from '@allot/lock/prometheus';
export { SqlFenceAnchor, raiseFence, type FenceDb } from './adapters/sql/sql-fences.ts';
export { sqlDialect, type SqlDialect, type SqlCapabilities } from './adapters/sql/dialect.ts';
export type { StrategyOutcome, StrategyStats } from './ports/claim-strategy.ts';
export type { IdempotencyStore, IdempotencyTx } from './ports/idempotency-store.ts';
export { IdempotencyProtocol } from './service/idempotency.ts';
