// The simulated payment rail's logic, without I/O but for its optional state file: one execution
// per idempotency key, paid at most once, with configurable latency, definite failures and hung
// answers (the outcome happened, the caller never hears of it). The HTTP server (sim-server.ts)
// and the in-process rail (in-process.ts) are thin shells over it.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync } from 'node:fs';
import path from 'node:path';
import type { RailLookup, RailOrder, RailOutcome } from '../ports/payment-rail.ts';

export type SimStatus = 'pending' | 'succeeded' | 'failed';

/** What the simulated rail holds under one key. */
export interface SimExecution {
  key: string;
  orderId: string;
  userId: string;
  asset: string;
  amount: bigint;
  destination: string;
  status: SimStatus;
  railRef: string | null;
  reason: string | null;
  /** ISO timestamps */
  receivedAt: string;
  finishedAt: string | null;
  /** times the rail actually paid under this key: 1 once succeeded, 0 otherwise; never more */
  executions: number;
  /** execute requests received under this key with its body, the first and every repeat (the
   * rail answers repeats without paying again, so this is how a test sees whether its caller
   * sent an order more than once); a state file keeps the count as of the outcome */
  requests: number;
}

export interface SimRailConfig {
  /** from receipt to outcome */
  latencyMs: number;
  /** 0..1: the order fails definitely ("simulated failure"), nothing is paid */
  failureRate: number;
  /** 0..1: the order is decided normally, but the answer to this request hangs for hangMs */
  timeoutRate: number;
  hangMs: number;
}

export interface SimRailStats {
  /** distinct keys received */
  received: number;
  /** sum of executions: payments actually made */
  executed: number;
  succeeded: number;
  failed: number;
  pending: number;
  /** repeats of a known key (same body) answered with the first outcome, not executed again */
  duplicatesRefused: number;
  /** requests refused because their key was already used for another order body */
  keyReused: number;
}

export interface SimRailCoreOptions extends Partial<SimRailConfig> {
  /** in [0, 1); default Math.random */
  random?: () => number;
  /** append-only JSON lines, one per finished outcome, loaded at construction */
  stateFile?: string;
  /** epoch ms; default Date.now */
  now?: () => number;
}

/** The answer to one execute request: the key's outcome, and how long the answer must hang first. */
export interface SimAnswer {
  outcome: RailOutcome;
  hangMs: number;
}

export const SIM_FAILURE_REASON = 'simulated failure';
export const MAX_RAIL_AMOUNT = 2n ** 63n - 1n;
export const DEFAULT_SIM_CONFIG: SimRailConfig = { latencyMs: 5, failureRate: 0, timeoutRate: 0, hangMs: 60_000 };
// setTimeout's ceiling
const MAX_DELAY_MS = 2_147_483_647;
const MAX_FIELD_LENGTH = 1024;

/** A rail refusal with the HTTP status the server answers it with. */
export class SimRailError extends Error {
  constructor(
    readonly code: 'KEY_REUSED' | 'INVALID_ORDER' | 'INVALID_CONFIG' | 'RAIL_CLOSED',
    readonly httpStatus: number,
    message: string,
  ) {
    super(message);
    this.name = 'SimRailError';
  }
}

/** The key was already used for an order with another body (HTTP 422). */
export class RailKeyReusedError extends SimRailError {
  constructor(readonly key: string) {
    super('KEY_REUSED', 422, `rail key ${JSON.stringify(key)} was already used for another order`);
    this.name = 'RailKeyReusedError';
  }
}

/** Checks a config patch (from options or the admin endpoint); throws INVALID_CONFIG. */
export function validateConfigPatch(patch: unknown): Partial<SimRailConfig> {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
    throw new SimRailError('INVALID_CONFIG', 400, 'config must be a JSON object');
  }
  const out: Partial<SimRailConfig> = {};
  for (const [name, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    const isRate = name === 'failureRate' || name === 'timeoutRate';
    if (!isRate && name !== 'latencyMs' && name !== 'hangMs') {
      throw new SimRailError('INVALID_CONFIG', 400, `unknown config field ${JSON.stringify(name)}`);
    }
    const max = isRate ? 1 : MAX_DELAY_MS;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max) {
      throw new SimRailError('INVALID_CONFIG', 400, `${name} must be a number in [0, ${max}]`);
    }
    out[name as keyof SimRailConfig] = value;
  }
  return out;
}

function validateOrder(order: RailOrder): void {
  for (const field of ['key', 'orderId', 'userId', 'asset', 'destination'] as const) {
    const v: unknown = order[field];
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_FIELD_LENGTH) {
      throw new SimRailError('INVALID_ORDER', 400, `${field} must be a non-empty string of at most ${MAX_FIELD_LENGTH} characters`);
    }
  }
  if (typeof order.amount !== 'bigint' || order.amount <= 0n || order.amount > MAX_RAIL_AMOUNT) {
    throw new SimRailError('INVALID_ORDER', 400, `amount must be an integer in [1, ${MAX_RAIL_AMOUNT}]`);
  }
}

function sameBody(e: SimExecution, o: RailOrder): boolean {
  return e.orderId === o.orderId && e.userId === o.userId && e.asset === o.asset && e.amount === o.amount && e.destination === o.destination;
}

function outcomeOf(e: SimExecution): RailOutcome {
  return e.status === 'succeeded' ? { status: 'succeeded', railRef: e.railRef! } : { status: 'failed', reason: e.reason! };
}

/** An execution as JSON: the amount as a decimal string. */
export type SimExecutionJson = Omit<SimExecution, 'amount'> & { amount: string };

/** An execution as JSON (amount as a decimal string): the state file's lines, the admin listing. */
export function executionToJson(e: SimExecution): SimExecutionJson {
  return { ...e, amount: e.amount.toString() };
}

function executionFromJson(v: unknown): SimExecution {
  const o = v as Record<string, unknown>;
  const str = (name: string): string => {
    if (typeof o[name] !== 'string') throw new Error(`${name} is not a string`);
    return o[name] as string;
  };
  const status = str('status');
  if (status !== 'succeeded' && status !== 'failed') throw new Error(`status ${status} is not a finished outcome`);
  if (!/^[0-9]+$/.test(str('amount'))) throw new Error('amount is not a decimal string');
  if (typeof o.executions !== 'number') throw new Error('executions is not a number');
  // Files written before the count existed: at least the request that was executed.
  if (o.requests !== undefined && typeof o.requests !== 'number') throw new Error('requests is not a number');
  return {
    key: str('key'),
    orderId: str('orderId'),
    userId: str('userId'),
    asset: str('asset'),
    amount: BigInt(str('amount')),
    destination: str('destination'),
    status,
    railRef: status === 'succeeded' ? str('railRef') : null,
    reason: status === 'failed' ? str('reason') : null,
    receivedAt: str('receivedAt'),
    finishedAt: str('finishedAt'),
    executions: o.executions,
    requests: typeof o.requests === 'number' ? o.requests : 1,
  };
}

export class SimRailCore {
  private cfg: SimRailConfig;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly stateFile: string | undefined;
  private readonly records = new Map<string, SimExecution>();
  /** the outcome a pending key will have; every repeat waits on the same promise */
  private readonly inflight = new Map<string, Promise<RailOutcome>>();
  /** latency timers of pending keys, with the rejection close() gives their waiters */
  private readonly timers = new Map<NodeJS.Timeout, (err: Error) => void>();
  private duplicates = 0;
  private keyReused = 0;
  private closed = false;

  constructor(opts: SimRailCoreOptions = {}) {
    const { random, stateFile, now, ...config } = opts;
    this.cfg = { ...DEFAULT_SIM_CONFIG, ...validateConfigPatch(config) };
    this.random = random ?? Math.random;
    this.now = now ?? Date.now;
    this.stateFile = stateFile;
    if (stateFile) this.load(stateFile);
  }

  config(): SimRailConfig {
    return { ...this.cfg };
  }

  /** Changes the config at runtime (orders already received keep their latency); returns the new one. */
  configure(patch: Partial<SimRailConfig>): SimRailConfig {
    this.cfg = { ...this.cfg, ...validateConfigPatch(patch) };
    return this.config();
  }

  /**
   * Executes the order once per key. A repeat with the same body answers the key's outcome (waiting
   * for it while pending); with another body it throws RailKeyReusedError. Each answer hangs with
   * probability timeoutRate: the caller must wait `hangMs` before answering.
   */
  async execute(order: RailOrder): Promise<SimAnswer> {
    if (this.closed) throw new SimRailError('RAIL_CLOSED', 503, 'the simulated rail is closed');
    validateOrder(order);
    const existing = this.records.get(order.key);
    let outcome: RailOutcome;
    if (existing) {
      if (!sameBody(existing, order)) {
        this.keyReused++;
        throw new RailKeyReusedError(order.key);
      }
      this.duplicates++;
      existing.requests++;
      outcome = existing.status === 'pending' ? await this.inflight.get(order.key)! : outcomeOf(existing);
    } else {
      outcome = await this.start(order);
    }
    return { outcome, hangMs: this.roll(this.cfg.timeoutRate) ? this.cfg.hangMs : 0 };
  }

  private start(order: RailOrder): Promise<RailOutcome> {
    const record: SimExecution = {
      key: order.key,
      orderId: order.orderId,
      userId: order.userId,
      asset: order.asset,
      amount: order.amount,
      destination: order.destination,
      status: 'pending',
      railRef: null,
      reason: null,
      receivedAt: new Date(this.now()).toISOString(),
      finishedAt: null,
      executions: 0,
      requests: 1,
    };
    this.records.set(order.key, record);
    const fails = this.roll(this.cfg.failureRate);
    const outcome = new Promise<RailOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        try {
          resolve(this.finish(record, fails));
        } catch (err) {
          reject(err as Error);
        }
      }, this.cfg.latencyMs);
      this.timers.set(timer, reject);
    });
    this.inflight.set(order.key, outcome);
    const done = () => void this.inflight.delete(order.key);
    outcome.then(done, done);
    return outcome;
  }

  /** Decides (and pays) a pending key. The outcome is written to the state file first: a payment
   * exists only once it is durable, so a crash before that leaves a key that was never executed. */
  private finish(record: SimExecution, fails: boolean): RailOutcome {
    const finished: SimExecution = {
      ...record,
      status: fails ? 'failed' : 'succeeded',
      railRef: fails ? null : `sim_${randomUUID().replaceAll('-', '')}`,
      reason: fails ? SIM_FAILURE_REASON : null,
      finishedAt: new Date(this.now()).toISOString(),
      executions: record.executions + (fails ? 0 : 1),
    };
    if (this.stateFile) {
      appendFileSync(this.stateFile, `${JSON.stringify(executionToJson(finished))}\n`);
    }
    Object.assign(record, finished);
    return outcomeOf(record);
  }

  /** What the rail did under this key. */
  lookup(key: string): RailLookup {
    const e = this.records.get(key);
    if (!e) return { status: 'not_found' };
    return e.status === 'pending' ? { status: 'pending' } : outcomeOf(e);
  }

  get(key: string): SimExecution | undefined {
    const e = this.records.get(key);
    return e && { ...e };
  }

  /** Every execution, in order of receipt. */
  executions(): SimExecution[] {
    return [...this.records.values()].map((e) => ({ ...e }));
  }

  stats(): SimRailStats {
    const s: SimRailStats = { received: 0, executed: 0, succeeded: 0, failed: 0, pending: 0, duplicatesRefused: this.duplicates, keyReused: this.keyReused };
    for (const e of this.records.values()) {
      s.received++;
      s.executed += e.executions;
      s[e.status]++;
    }
    return s;
  }

  /** Stops: pending keys stay unexecuted (as in a crash) and their waiters get RAIL_CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [timer, reject] of this.timers) {
      clearTimeout(timer);
      reject(new SimRailError('RAIL_CLOSED', 503, 'the simulated rail closed before the outcome'));
    }
    this.timers.clear();
  }

  private roll(rate: number): boolean {
    return rate > 0 && this.random() < rate;
  }

  private load(file: string): void {
    mkdirSync(path.dirname(file), { recursive: true });
    if (!existsSync(file)) return;
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');
    // The last element is '' after a final newline, else a line cut by a crash mid-write: kept when
    // it is whole (only its newline was lost), cut off when it is not (that outcome never was).
    const tail = lines.pop() ?? '';
    lines.forEach((line, i) => {
      if (line !== '') this.loadLine(file, i + 1, line);
    });
    if (tail === '') return;
    let whole = true;
    try {
      executionFromJson(JSON.parse(tail));
    } catch {
      whole = false;
    }
    if (whole) {
      this.loadLine(file, lines.length + 1, tail);
      appendFileSync(file, '\n');
    } else {
      truncateSync(file, Buffer.byteLength(text) - Buffer.byteLength(tail));
    }
  }

  private loadLine(file: string, lineNo: number, line: string): void {
    let e: SimExecution;
    try {
      e = executionFromJson(JSON.parse(line));
    } catch (err) {
      throw new Error(`${file}:${lineNo}: not a simulated rail outcome: ${(err as Error).message}`, { cause: err });
    }
    if (this.records.has(e.key)) throw new Error(`${file}:${lineNo}: key ${JSON.stringify(e.key)} appears twice`);
    this.records.set(e.key, e);
  }
}
