// The HTTP server's own limits against real slow clients over TCP (node:net) on a listening app:
// a client stalling in its headers, one trickling its body, an idle keep-alive connection and
// connections past the cap are each closed, promptly. Limits are hundreds of ms here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/http/app.ts';
import { DEFAULT_HTTP_LIMITS, resolveHttpLimits } from '../../src/http/limits.ts';
import { ConfigError, loadConfig } from '../../src/service/config.ts';
import { makeApp, TEST_TOKEN, type TestApp } from '../helpers/app.ts';

const LIMITS = { headersTimeoutMs: 400, requestTimeoutMs: 900, keepAliveTimeoutMs: 400, checkIntervalMs: 50 };
// Generous upper bound for "promptly": far below Node's defaults (60-300 s), far above jitter.
const PROMPT_MS = 5000;

let t: TestApp;
let port: number;

before(async () => {
  t = await makeApp({ app: { http: LIMITS } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
after(async () => {
  await t?.close();
});

interface Conn {
  socket: Socket;
  /** Everything received so far. */
  data(): string;
  /** Resolves when the server closes the connection: what it sent and when (ms since open);
   * rejects when it has not within PROMPT_MS (Node's own defaults would take 60 s or more). */
  closed: Promise<{ data: string; atMs: number }>;
}

function open(toPort: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect({ port: toPort, host: '127.0.0.1' });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('error', () => {}); // a reset counts as closed
    let closed: Promise<{ data: string; atMs: number }> | undefined;
    const whenClosed = new Promise<{ data: string; atMs: number }>((res) => socket.once('close', () => res({ data: received, atMs: Date.now() - started })));
    socket.once('connect', () =>
      resolve({
        socket,
        data: () => received,
        get closed() {
          closed ??= Promise.race([
            whenClosed,
            new Promise<never>((_, rej) => setTimeout(() => {
              socket.destroy();
              rej(new Error(`the server did not close the connection within ${PROMPT_MS} ms; received: ${received.slice(0, 200)}`));
            }, PROMPT_MS).unref()),
          ]);
          return closed;
        },
      }),
    );
    socket.once('error', reject);
  });
}

async function waitFor(cond: () => boolean, what: string, ms = PROMPT_MS): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function assertTimeoutAnswer(data: string): void {
  assert.match(data, /^HTTP\/1\.1 408 /, `got: ${data.slice(0, 200)}`);
  assert.match(data, /connection: close/i);
  const body = JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'REQUEST_TIMEOUT');
  assert.match(body.error.message, /in time/);
}

describe('headers timeout', () => {
  test('a client that sends half its headers and stalls gets 408 and is cut after the headers timeout', async () => {
    const c = await open(port);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const { data, atMs } = await c.closed;
    assertTimeoutAnswer(data);
    assert.ok(atMs >= LIMITS.headersTimeoutMs - 50, `cut after ${atMs} ms, before the ${LIMITS.headersTimeoutMs} ms headers timeout`);
    assert.ok(atMs < PROMPT_MS, `cut only after ${atMs} ms`);
  });

  test('a client that connects and sends nothing is cut after the headers timeout', async () => {
    const c = await open(port);
    const { atMs } = await c.closed;
    assert.ok(atMs >= LIMITS.headersTimeoutMs - 50 && atMs < PROMPT_MS, `cut after ${atMs} ms`);
  });

  test('headers that keep trickling in do not extend it', async () => {
    const c = await open(port);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const drip = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write('X-Drip: 1\r\n');
    }, 50);
    try {
      const { data, atMs } = await c.closed;
      assertTimeoutAnswer(data);
      assert.ok(atMs < PROMPT_MS, `cut only after ${atMs} ms`);
    } finally {
      clearInterval(drip);
    }
  });
});

describe('request timeout', () => {
  test('a client that sends its headers and trickles the body gets 408 and is cut after the request timeout', async () => {
    const c = await open(port);
    const body = JSON.stringify({ name: 'slow', stock: 1 }).padEnd(200, ' ');
    c.socket.write(`POST /v1/campaigns HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    let sent = 0;
    const drip = setInterval(() => {
      if (!c.socket.destroyed && sent < body.length) c.socket.write(body[sent++]!);
    }, 25);
    try {
      const { data, atMs } = await c.closed;
      assertTimeoutAnswer(data);
      assert.ok(sent < body.length, 'the body was still arriving');
      // Past the headers timeout (the headers came at once), cut by the request timeout.
      assert.ok(atMs >= LIMITS.requestTimeoutMs - 50, `cut after ${atMs} ms, before the ${LIMITS.requestTimeoutMs} ms request timeout`);
      assert.ok(atMs < PROMPT_MS, `cut only after ${atMs} ms`);
    } finally {
      clearInterval(drip);
    }
  });

  test('a request sent in time is answered normally, even when its handler is slower than nothing', async () => {
    const c = await open(port);
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    const { data } = await c.closed;
    assert.match(data, /^HTTP\/1\.1 200 /);
  });
});

describe('keep-alive timeout', () => {
  test('an idle keep-alive connection serves requests, then is closed after the keep-alive timeout', async () => {
    const c = await open(port);
    const request = 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
    c.socket.write(request);
    await waitFor(() => c.data().includes('"status":"ok"'), 'the first answer');
    assert.match(c.data(), /connection: keep-alive/i);
    // Reused within the timeout: the connection is kept alive, not closed after each answer.
    await sleep(LIMITS.keepAliveTimeoutMs / 4);
    c.socket.write(request);
    await waitFor(() => c.data().split('"status":"ok"').length === 3, 'the second answer');
    const answeredAt = Date.now();
    await c.closed;
    const idleMs = Date.now() - answeredAt;
    assert.ok(idleMs >= LIMITS.keepAliveTimeoutMs - 100, `closed after ${idleMs} ms idle, before the ${LIMITS.keepAliveTimeoutMs} ms keep-alive timeout`);
    assert.ok(idleMs < PROMPT_MS, `closed only after ${idleMs} ms idle`);
  });
});

describe('connection cap', () => {
  let capped: FastifyInstance;
  let cappedPort: number;
  before(async () => {
    capped = await buildApp({ service: t.service, adminToken: TEST_TOKEN, http: { maxConnections: 2 } });
    await capped.listen({ port: 0, host: '127.0.0.1' });
    cappedPort = (capped.server.address() as AddressInfo).port;
  });
  after(async () => {
    await capped?.close();
  });

  test('connections past the cap are closed at once, unanswered; a freed slot is used again', async () => {
    const held = [await open(cappedPort), await open(cappedPort)];
    for (const h of held) h.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => held.every((h) => h.data().includes('"status":"ok"')), 'both held connections answered');

    const extra = await open(cappedPort);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    const { data, atMs } = await extra.closed;
    assert.equal(data, '', 'a connection past the cap gets no answer');
    assert.ok(atMs < PROMPT_MS, `closed only after ${atMs} ms`);
    assert.ok(held.every((h) => !h.socket.destroyed), 'the held connections stay open');

    held[0]!.socket.destroy();
    // The server counts the freed slot once it has seen the close: retry briefly.
    let answered = '';
    for (let i = 0; i < 50 && !answered.includes('"status":"ok"'); i++) {
      const again = await open(cappedPort);
      again.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      answered = (await again.closed).data;
      if (!answered) await sleep(20);
    }
    assert.match(answered, /^HTTP\/1\.1 200 /);
    held[1]!.socket.destroy();
  });
});

describe('settings', () => {
  test('the service defaults are those of the HTTP layer, and the environment sets them', () => {
    const c = loadConfig({});
    assert.deepEqual(
      { headersTimeoutMs: c.httpHeadersTimeoutMs, requestTimeoutMs: c.httpRequestTimeoutMs, keepAliveTimeoutMs: c.httpKeepAliveTimeoutMs, maxConnections: c.httpMaxConnections, checkIntervalMs: c.httpCheckIntervalMs },
      { ...DEFAULT_HTTP_LIMITS },
    );
    const set = loadConfig({ ALLOT_HTTP_HEADERS_TIMEOUT_MS: '2000', ALLOT_HTTP_REQUEST_TIMEOUT_MS: '4000', ALLOT_HTTP_KEEP_ALIVE_TIMEOUT_MS: '65000', ALLOT_HTTP_MAX_CONNECTIONS: '50', ALLOT_HTTP_CHECK_INTERVAL_MS: '250' });
    assert.deepEqual([set.httpHeadersTimeoutMs, set.httpRequestTimeoutMs, set.httpKeepAliveTimeoutMs, set.httpMaxConnections, set.httpCheckIntervalMs], [2000, 4000, 65000, 50, 250]);
  });

  test('a headers timeout longer than the request timeout is refused, naming both', () => {
    assert.throws(
      () => loadConfig({ ALLOT_HTTP_HEADERS_TIMEOUT_MS: '20000', ALLOT_HTTP_REQUEST_TIMEOUT_MS: '10000' }),
      (e: unknown) => e instanceof ConfigError && e.problems.length === 1 && /ALLOT_HTTP_HEADERS_TIMEOUT_MS.*ALLOT_HTTP_REQUEST_TIMEOUT_MS/.test(e.problems[0]!),
    );
    assert.throws(() => loadConfig({ ALLOT_HTTP_MAX_CONNECTIONS: '0' }), (e: unknown) => e instanceof ConfigError && e.problems[0]!.startsWith('ALLOT_HTTP_MAX_CONNECTIONS'));
    assert.throws(() => resolveHttpLimits({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), RangeError);
  });

  test('the running server carries the limits it was given', () => {
    const s = t.app.server;
    assert.equal(s.headersTimeout, LIMITS.headersTimeoutMs);
    assert.equal(s.requestTimeout, LIMITS.requestTimeoutMs);
    assert.equal(s.keepAliveTimeout, LIMITS.keepAliveTimeoutMs);
    assert.equal(s.maxConnections, DEFAULT_HTTP_LIMITS.maxConnections);
  });
});
