// The payment rail from configuration: ALLOT_RAIL_URL names an HTTP rail (docs/payouts.md, "The
// rail protocol"); without it, a simulated rail runs in-process, its record kept in the data
// dir so a restart's recovery can still ask it what it executed. The banner says which.
import { join } from 'node:path';
import type { PaymentRail } from '../ports/payment-rail.ts';
import { HttpRail } from '../rail/http-rail.ts';
import { InProcessSimRail } from '../rail/in-process.ts';
import type { Config } from './config.ts';

export function railFromConfig(config: Partial<Pick<Config, 'railUrl' | 'railTimeoutMs' | 'dataDir' | 'databaseUrl'>>): PaymentRail {
  const timeoutMs = config.railTimeoutMs ?? 10_000;
  if (config.railUrl) return new HttpRail({ url: config.railUrl, timeoutMs });
  // An embedded database keeps the simulated rail's record beside it; memory:// keeps neither.
  const persistent = config.dataDir !== undefined && !(config.databaseUrl ?? '').startsWith('memory:');
  return new InProcessSimRail({ timeoutMs, ...(persistent ? { stateFile: join(config.dataDir!, 'simulated-rail.jsonl') } : {}) });
}
