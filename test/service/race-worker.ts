// A race-test worker process: opens its own service (own connection pool) once, then runs one
// race per job: arms its share of claims, waits for "go", fires them all at once, and reports
// every outcome to the parent. One pool of workers serves every strategy of a dialect.
import { AllotService } from '../../src/service/service.ts';

export type WorkerMessage =
  | { type: 'open'; url: string; locksUrl?: string; lockPrefix?: string }
  | { type: 'job'; campaignId: string; claims: Array<{ userId: string; key: string | null }> }
  | { type: 'go' }
  | { type: 'close' };

interface Result {
  userId: string;
  key: string | null;
  status: number;
  body: unknown;
  error?: string;
}

const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));

let service: AllotService | undefined;
let job: Extract<WorkerMessage, { type: 'job' }> | undefined;

process.on('message', async (msg: WorkerMessage) => {
  if (msg.type === 'open') {
    service = await AllotService.open({
      config: { databaseUrl: msg.url, dbPoolSize: 10, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: msg.locksUrl, lockPrefix: msg.lockPrefix },
      migrate: false,
    });
    await send({ type: 'ready' });
  } else if (msg.type === 'job') {
    job = msg;
    await send({ type: 'armed' });
  } else if (msg.type === 'go') {
    const s = service!;
    const { campaignId, claims } = job!;
    const results: Result[] = await Promise.all(
      claims.map(async (c) => {
        try {
          // Like a real client: while the first request under a key runs, wait and ask again.
          for (let attempt = 0; ; attempt++) {
            const out = await s.claim(campaignId, c.userId, c.key);
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
    await send({ type: 'done', results });
  } else if (msg.type === 'close') {
    await service?.close();
    process.disconnect();
  }
});
