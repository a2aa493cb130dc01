// The payment rail over HTTP (the protocol of docs/payouts.md, "The rail protocol"; sim-server.ts
// serves it). Anything but a well-formed outcome — a timeout, a reset, a 5xx, a garbled body — is
// RailUnknownError: the order may or may not have been paid, so it waits for a lookup or a person.
import { RailUnknownError, type PaymentRail, type RailLookup, type RailOrder, type RailOutcome } from '../ports/payment-rail.ts';

export interface HttpRailOptions {
  /** the rail's base URL; credentials in it are sent as HTTP basic auth */
  url: string;
  /** how long execute waits for the answer (default 10000) */
  timeoutMs?: number;
  /** how long lookup waits (default 5000) */
  lookupTimeoutMs?: number;
}

interface Answer {
  status: number;
  text: string;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function asOutcome(v: unknown): RailOutcome | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.status === 'succeeded' && typeof o.railRef === 'string' && o.railRef !== '') return { status: 'succeeded', railRef: o.railRef };
  if (o.status === 'failed' && typeof o.reason === 'string') return { status: 'failed', reason: o.reason };
  return undefined;
}

function snippet(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** What a failed fetch was: the network error's code and message, not undici's bare "fetch failed". */
function describeFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  if (cause?.code || cause?.message) return [cause.code, cause.message].filter(Boolean).join(': ');
  return (err as Error)?.message ?? String(err);
}

export class HttpRail implements PaymentRail {
  readonly name: string;
  private readonly base: string;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly lookupTimeoutMs: number;

  constructor(opts: HttpRailOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`rail URL must be http(s): ${u.protocol}`);
    this.authorization =
      u.username || u.password
        ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`
        : undefined;
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    this.base = u.toString().replace(/\/+$/, '');
    this.name = this.base;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 5_000;
  }

  async execute(order: RailOrder, signal?: AbortSignal): Promise<RailOutcome> {
    const body = JSON.stringify({
      key: order.key,
      orderId: order.orderId,
      userId: order.userId,
      asset: order.asset,
      amount: order.amount.toString(),
      destination: order.destination,
    });
    let answer: Answer;
    try {
      answer = await this.request('POST', '/v1/executions', body, this.timeoutMs, signal);
    } catch (err) {
      throw new RailUnknownError(`${this.failure(err, this.timeoutMs, signal)}; the outcome is unknown`, { cause: err });
    }
    const json = parseJson(answer.text);
    if (answer.status === 200) {
      const outcome = asOutcome(json);
      if (outcome) return outcome;
      throw new RailUnknownError(`the rail answered 200 with a malformed outcome (${snippet(answer.text)}); the outcome is unknown`);
    }
    if (answer.status === 422 && (json as { error?: { code?: unknown } } | undefined)?.error?.code === 'KEY_REUSED') {
      // allot derives one key per order and never reuses it: this is a bug, not an outcome
      throw new Error(`the rail refused key ${JSON.stringify(order.key)} as reused for another order (422 KEY_REUSED): ${snippet(answer.text)}`);
    }
    throw new RailUnknownError(`the rail answered HTTP ${answer.status} (${snippet(answer.text)}); the outcome is unknown`);
  }

  async lookup(key: string, signal?: AbortSignal): Promise<RailLookup> {
    let answer: Answer;
    try {
      answer = await this.request('GET', `/v1/executions/${encodeURIComponent(key)}`, undefined, this.lookupTimeoutMs, signal);
    } catch (err) {
      throw new Error(`rail unreachable: ${this.failure(err, this.lookupTimeoutMs, signal)}`, { cause: err });
    }
    const json = parseJson(answer.text) as Record<string, unknown> | undefined;
    if (answer.status === 200) {
      if (json?.status === 'pending') return { status: 'pending' };
      const outcome = asOutcome(json);
      if (outcome) return outcome;
    }
    // only the rail's own not_found counts: a bare 404 (wrong URL, a proxy) must not read as "never executed"
    if (answer.status === 404 && json?.status === 'not_found') return { status: 'not_found' };
    throw new Error(`rail unreachable: the lookup of ${JSON.stringify(key)} answered HTTP ${answer.status} (${snippet(answer.text)})`);
  }

  async close(): Promise<void> {}

  private failure(err: unknown, timeoutMs: number, signal: AbortSignal | undefined): string {
    if (signal?.aborted) return `the wait for the rail was aborted (${String(signal.reason)})`;
    if ((err as Error)?.name === 'TimeoutError') return `the rail did not answer within ${timeoutMs} ms`;
    return `the request to the rail at ${this.base} failed (${describeFailure(err)})`;
  }

  /** One request, its body read whole, under a timeout and the caller's signal. */
  private async request(method: string, path: string, body: string | undefined, timeoutMs: number, signal?: AbortSignal): Promise<Answer> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.authorization) headers.authorization = this.authorization;
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
    });
    return { status: res.status, text: await res.text() };
  }
}
