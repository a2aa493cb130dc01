// A lottery-race worker process: opens its own service (own connection pool) once; per job it
// waits for "go", fires its share of draws (each at its offset after "go", 0 = all at once) and reports every
// outcome with its start and end instants (epoch ms) to the parent.
import { AllotService } from '../../src/service/service.ts';

export interface Draw {
  userId: string;
  key: string | null;
  /** ms after "go" */
  at: number;
}

export type WorkerMessage =
  | { type: 'open'; url: string; locksUrl?: string; lockPrefix?: string }
  | { type: 'job'; campaignId: string; draws: Draw[] }
  | { type: 'go' }
  | { type: 'close' };

export interface DrawResult extends Draw {
  status: number;
  body: { claim?: { id: string; userId: string; prizeId: string | null }; error?: { code: string } } | null;
  error?: string;
  start: number;
  end: number;
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
    const { campaignId, draws } = job!;
    const go = Date.now();
    const results: DrawResult[] = await Promise.all(
      draws.map(async (d) => {
        if (d.at > 0) await new Promise((r) => setTimeout(r, Math.max(0, go + d.at - Date.now())));
        const start = Date.now();
        try {
          const out = await s.claim(campaignId, d.userId, d.key);
          return { ...d, status: out.status, body: out.body as DrawResult['body'], start, end: Date.now() };
        } catch (err) {
          const cause = (err as Error & { cause?: Error })?.cause;
          return { ...d, status: 0, body: null, error: `${String((err as Error)?.message ?? err)}${cause ? ` (cause: ${cause.message})` : ''}`, start, end: Date.now() };
        }
      }),
    );
    await send({ type: 'done', results, go, finished: Date.now() });
  } else if (msg.type === 'close') {
    await service?.close();
    process.disconnect();
  }
});
