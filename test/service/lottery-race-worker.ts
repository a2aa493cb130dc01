// A lottery-race worker process: opens its own service (own connection pool), waits for "go",
// fires its share of draws (each at its offset after "go", 0 = all at once) and reports every
// outcome with its start and end instants (epoch ms) to the parent.
import { AllotService } from '../../src/service/service.ts';

export interface Draw {
  userId: string;
  key: string | null;
  /** ms after "go" */
  at: number;
}

export interface Job {
  url: string;
  locksUrl?: string;
  lockPrefix?: string;
  campaignId: string;
  draws: Draw[];
}

export interface DrawResult extends Draw {
  status: number;
  body: { claim?: { id: string; userId: string; prizeId: string | null }; error?: { code: string } } | null;
  error?: string;
  start: number;
  end: number;
}

const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));

process.once('message', async (job: Job) => {
  const service = await AllotService.open({
    config: { databaseUrl: job.url, dbPoolSize: 10, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: job.locksUrl, lockPrefix: job.lockPrefix },
    migrate: false,
  });
  await send({ type: 'ready' });
  process.once('message', async () => {
    const go = Date.now();
    const results: DrawResult[] = await Promise.all(
      job.draws.map(async (d) => {
        if (d.at > 0) await new Promise((r) => setTimeout(r, Math.max(0, go + d.at - Date.now())));
        const start = Date.now();
        try {
          const out = await service.claim(job.campaignId, d.userId, d.key);
          return { ...d, status: out.status, body: out.body as DrawResult['body'], start, end: Date.now() };
        } catch (err) {
          const cause = (err as Error & { cause?: Error })?.cause;
          return { ...d, status: 0, body: null, error: `${String((err as Error)?.message ?? err)}${cause ? ` (cause: ${cause.message})` : ''}`, start, end: Date.now() };
        }
      }),
    );
    const finished = Date.now();
    await service.close();
    await send({ type: 'done', results, go, finished });
    process.disconnect();
  });
});
