// The simulated rail over HTTP (node:http, JSON), the protocol docs/payouts.md documents under
// "The rail protocol": what HttpRail speaks, served by a SimRailCore. For tests, the race lab and
// local runs; sim-main.ts runs it as its own process.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RailOrder } from '../ports/payment-rail.ts';
import { executionToJson, SimRailCore, SimRailError, validateConfigPatch, type SimRailCoreOptions } from './sim-core.ts';

export interface SimRailServerOptions extends SimRailCoreOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** 0 (the default) picks a free port */
  port?: number;
}

export interface SimRailServer {
  /** http://HOST:PORT, no trailing slash */
  url: string;
  core: SimRailCore;
  /** Stops listening, destroys every connection (hung answers included) and closes the core. */
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024;
const EXECUTIONS = '/v1/executions';

class BadRequest extends Error {
  constructor(
    readonly httpStatus: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  send(res, status, { error: { code, message } });
}

async function readJson(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(413, 'BODY_TOO_LARGE', `the body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest(400, 'INVALID_JSON', 'the body is not JSON');
  }
}

/** The POST body as an order; the amount is a decimal string (JSON numbers lose 64-bit precision). */
function parseOrder(body: unknown): RailOrder {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new BadRequest(400, 'INVALID_ORDER', 'the body must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const field of ['key', 'orderId', 'userId', 'asset', 'amount', 'destination']) {
    if (typeof b[field] !== 'string') throw new BadRequest(400, 'INVALID_ORDER', `${field} must be a string`);
  }
  const amount = b.amount as string;
  if (!/^(0|[1-9][0-9]*)$/.test(amount)) throw new BadRequest(400, 'INVALID_ORDER', 'amount must be a decimal string of an integer');
  return {
    key: b.key as string,
    orderId: b.orderId as string,
    userId: b.userId as string,
    asset: b.asset as string,
    amount: BigInt(amount),
    destination: b.destination as string,
  };
}

/** Waits ms, or less when the signal aborts (the connection or the server closed). */
function hang(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

export async function startSimRail(opts: SimRailServerOptions = {}): Promise<SimRailServer> {
  const { host = '127.0.0.1', port = 0, ...coreOpts } = opts;
  const core = new SimRailCore(coreOpts);
  const closing = new AbortController();

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const { pathname } = new URL(req.url ?? '/', 'http://rail.invalid');
    const method = req.method ?? 'GET';

    if (pathname === EXECUTIONS && method === 'POST') {
      const order = parseOrder(await readJson(req));
      const answer = await core.execute(order);
      if (answer.hangMs > 0) {
        // the outcome happened; the caller just does not hear of it in time
        const gone = new AbortController();
        res.once('close', () => gone.abort());
        await hang(answer.hangMs, AbortSignal.any([gone.signal, closing.signal]));
      }
      return send(res, 200, answer.outcome);
    }
    if (pathname.startsWith(`${EXECUTIONS}/`) && method === 'GET') {
      let key: string;
      try {
        key = decodeURIComponent(pathname.slice(EXECUTIONS.length + 1));
      } catch {
        throw new BadRequest(400, 'INVALID_KEY', 'the key is not valid URL encoding');
      }
      const found = core.lookup(key);
      return send(res, found.status === 'not_found' ? 404 : 200, found);
    }
    if (pathname === '/v1/sim/executions' && method === 'GET') {
      return send(res, 200, { executions: core.executions().map(executionToJson), stats: core.stats() });
    }
    if (pathname === '/v1/sim/config' && method === 'POST') {
      return send(res, 200, core.configure(validateConfigPatch(await readJson(req))));
    }
    if (pathname === '/healthz' && method === 'GET') {
      return send(res, 200, { status: 'ok' });
    }
    const known = pathname === EXECUTIONS || pathname.startsWith(`${EXECUTIONS}/`) || ['/v1/sim/executions', '/v1/sim/config', '/healthz'].includes(pathname);
    if (known) throw new BadRequest(405, 'METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname}`);
    throw new BadRequest(404, 'NOT_FOUND', `no route ${method} ${pathname}`);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof BadRequest || err instanceof SimRailError) return sendError(res, err.httpStatus, err.code, err.message);
      sendError(res, 500, 'INTERNAL', (err as Error)?.message ?? String(err));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.address.includes(':') ? `[${address.address}]` : address.address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${shownHost}:${address.port}`,
    core,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        core.close();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
