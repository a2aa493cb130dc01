// Test-side factory for the HTTP app on an in-memory PGlite: one per test file (PGlite takes
// a second or more to start), with tests isolated by unique campaign ids.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../src/http/app.ts';
import type { Clock } from '../../src/ports/clock.ts';
import { AllotService } from '../../src/service/service.ts';

export const TEST_TOKEN = 'test-admin-token-0123456789abcdef'; // 32 chars

export interface TestApp {
  app: FastifyInstance;
  service: AllotService;
  token: string;
  auth: Record<string, string>;
  close(): Promise<void>;
}

export interface MakeAppOptions {
  clock?: Clock;
  databaseUrl?: string;
  /** Extra buildApp options (metricsToken, bodyLimitBytes, …). */
  app?: Partial<Omit<AppOptions, 'service' | 'adminToken'>>;
}

export async function makeApp(opts: MakeAppOptions = {}): Promise<TestApp> {
  const service = await AllotService.open({
    config: {
      databaseUrl: opts.databaseUrl ?? 'memory://',
      dbPoolSize: 4,
      dbTimeoutMs: 5000,
      defaultStrategy: 'conditional',
      allowUnsafeStrategies: false,
    },
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  let app: FastifyInstance;
  try {
    app = await buildApp({ ...opts.app, service, adminToken: TEST_TOKEN });
    await app.ready();
  } catch (err) {
    await service.close();
    throw err;
  }
  return {
    app,
    service,
    token: TEST_TOKEN,
    auth: { authorization: `Bearer ${TEST_TOKEN}` },
    async close() {
      await app.close();
      await service.close();
    },
  };
}

/** A clock the test can set; null follows the real time. */
export class TestClock implements Clock {
  private fixed: number | null = null;
  now(): number {
    return this.fixed ?? Date.now();
  }
  set(ms: number | string | null): void {
    this.fixed = typeof ms === 'string' ? Date.parse(ms) : ms;
  }
}

/** A unique id for a test's campaign, so tests sharing one store never meet. */
export function uid(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** An error code of the API: UPPER_SNAKE. */
export const ERROR_CODE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/;
