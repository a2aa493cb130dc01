// A payout race-test worker process: its own service (own connection pool, its own transfer
// executor and recovery sweep) on the test's database, the simulated rail process as its rail;
// waits for "go", fires its share of operations at once, and reports every outcome.
import { AllotService } from '../../src/service/service.ts';
import { HttpRail } from '../../src/rail/http-rail.ts';

export type RaceOp =
  | { kind: 'withdraw'; userId: string; asset: string; amount: string; key: string }
  | { kind: 'transfer'; orderId: string; userId: string; asset: string; amount: string; destination: string }
  | { kind: 'resolve'; orderId: string; outcome: 'succeeded' | 'failed' };

export interface RaceSetup {
  url: string;
  railUrl: string;
  locksUrl?: string;
  railTimeoutMs?: number;
}

export interface RaceResult {
  op: RaceOp;
  status: number;
  body: unknown;
  replayed?: boolean;
  error?: string;
}

type Message = { type: 'open'; setup: RaceSetup } | { type: 'arm'; ops: RaceOp[] } | { type: 'go' } | { type: 'close' };

const send = (msg: unknown) => new Promise<void>((resolve) => process.send!(msg, () => resolve()));

let service: AllotService;
let armed: RaceOp[] = [];

async function runOne(op: RaceOp): Promise<RaceResult> {
  try {
    if (op.kind === 'withdraw') {
      // Like a real client: while the first request under a key runs, wait and ask again.
      for (let attempt = 0; ; attempt++) {
        const out = await service.payouts.withdraw(op.userId, op.asset, BigInt(op.amount), op.key);
        const code = (out.body as { error?: { code?: string } }).error?.code;
        if (code !== 'IDEMPOTENCY_IN_PROGRESS' || attempt >= 600) return { op, status: out.status, body: out.body, replayed: out.replayed };
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    if (op.kind === 'transfer') {
      const out = await service.payouts.transfer({ ...op, amount: BigInt(op.amount) });
      return { op, status: out.status, body: out.body, replayed: out.replayed };
    }
    const r = await service.payouts.resolve(op.orderId, op.outcome, 'race');
    return { op, status: 200, body: { state: r.transfer.state }, replayed: r.replayed };
  } catch (err) {
    const e = err as { status?: number; code?: string; message?: string };
    return { op, status: e.status ?? 0, body: { error: { code: e.code } }, error: e.message ?? String(err) };
  }
}

// One service per process for the whole suite (opening one costs seconds); each race is armed
// with its operations, then fired by "go" at the same moment in every process.
process.on('message', async (m: Message) => {
  if (m.type === 'open') {
    const railTimeoutMs = m.setup.railTimeoutMs ?? 5_000;
    service = await AllotService.open({
      config: { databaseUrl: m.setup.url, dbPoolSize: 10, dbTimeoutMs: 20_000, defaultStrategy: 'conditional', allowUnsafeStrategies: false, locksUrl: m.setup.locksUrl },
      migrate: false,
      rail: new HttpRail({ url: m.setup.railUrl, timeoutMs: railTimeoutMs }),
      payouts: { railTimeoutMs },
    });
    await send({ type: 'ready' });
  } else if (m.type === 'arm') {
    armed = m.ops;
    await send({ type: 'armed' });
  } else if (m.type === 'go') {
    const results = await Promise.all(armed.map(runOne));
    // Let this instance's executor finish what it received before reporting.
    await service.payouts.idle();
    await send({ type: 'done', results });
  } else if (m.type === 'close') {
    await service?.close();
    process.exit(0);
  }
});
