// A race-test worker process: opens its own service (own connection pool), waits for "go",
// fires its share of claims all at once, and reports every outcome to the parent.
import { AllotService } from '../../src/service/service.ts';

interface Job {
  url: string;
  locksUrl?: string;
  lockPrefix?: string;
  campaignId: string;
  claims: Array<{ userId: string; key: string | null }>;
}

interface Result {
  userId: string;
  key: string | null;
  status: number;
  body: unknown;
  error?: string;
}

const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));

process.once('message', async (job: Job) => {
  const service = await AllotService.open({
    config: { databaseUrl: job.url, dbPoolSize: 10, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: job.locksUrl, lockPrefix: job.lockPrefix },
    migrate: false,
  });
  await send({ type: 'ready' });
  process.once('message', async () => {
    const results: Result[] = await Promise.all(
      job.claims.map(async (c) => {
        try {
          // Like a real client: while the first request under a key runs, wait and ask again.
          for (let attempt = 0; ; attempt++) {
            const out = await service.claim(job.campaignId, c.userId, c.key);
            const code = (out.body as { error?: { code?: string } }).error?.code;
            if (code !== 'IDEMPOTENCY_IN_PROGRESS' || attempt >= 600) return { ...c, status: out.status, body: out.body };
            await new Promise((r) => setTimeout(r, 50));
          }
        } catch (err) {
          const cause = (err as Error & { cause?: Error })?.cause;
          return { ...c, status: 0, body: null, error: `${String((err as Error)?.message ?? err)}${cause ? ` (cause: ${cause.message})` : ''}` };
        }
      }),
    );
    await service.close();
    await send({ type: 'done', results });
    process.disconnect();
  });
});
