// HTTP details a client meets at the edges: a body over the limit is answered in a form `fetch`
// can read (not cut while the client still sends), a wrong method on a known path is 405 with
// `Allow`, and every `error.problems` has one shape.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { makeApp, uid, type TestApp } from '../helpers/app.ts';

const LIMIT = 65_536;
let t: TestApp;
let base: string;

before(async () => {
  t = await makeApp({ app: { bodyLimitBytes: LIMIT } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await t?.close();
});

/** POSTs a JSON body with Node's fetch (undici) from a child process: its status, Connection
 * header and body, or the error code fetch failed with (EPIPE, ECONNRESET…). */
async function fetchInChild(url: string, body: string): Promise<{ status?: number; connection?: string | null; body?: string; error?: string }> {
  const script = `
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    const { url, authorization, body } = JSON.parse(Buffer.concat(chunks).toString());
    try {
      const res = await fetch(url, { method: 'POST', headers: { authorization, 'content-type': 'application/json' }, body });
      console.log(JSON.stringify({ status: res.status, connection: res.headers.get('connection'), body: await res.text() }));
    } catch (e) {
      console.log(JSON.stringify({ error: String(e.cause?.code ?? e.message) }));
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify({ url, authorization: t.auth.authorization, body }));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  await once(child, 'close');
  return JSON.parse(out) as { status?: number; connection?: string | null; body?: string; error?: string };
}

/** Writes raw bytes on a new connection; everything the server sent once it closed it. */
async function exchange(raw: string): Promise<string> {
  const socket = connect({ port: Number(new URL(base).port), host: '127.0.0.1' });
  let data = '';
  socket.setEncoding('utf8').on('data', (c: string) => (data += c)).on('error', () => {});
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  socket.write(raw);
  const timer = setTimeout(() => socket.destroy(), 5000);
  await closed;
  clearTimeout(timer);
  return data;
}

interface ErrorJson {
  error: { code: string; message: string; [k: string]: unknown };
}

describe('a body over the limit', () => {
  test('fetch posting 1 MB and 3 MB to a 64 KB limit reads the 400 VALIDATION_FAILED (no EPIPE), and nothing is created', async () => {
    // The client runs in its own process, as a real one does: in this process the server's
    // answer and the client's writes take turns on one event loop, which hid the EPIPE. Cut
    // unread, 1 MB sometimes still fitted in loopback buffers; 3 MB failed with EPIPE every time.
    for (const size of [1_000_000, 3_000_000, 3_000_000]) {
      const id = uid('big');
      const res = await fetchInChild(`${base}/v1/campaigns`, JSON.stringify({ id, name: 'big', stock: 1, pad: 'x'.repeat(size) }));
      assert.equal(res.error, undefined, `fetch failed: ${res.error}`);
      assert.equal(res.status, 400);
      assert.equal(res.connection, 'close');
      const err = (JSON.parse(res.body!) as ErrorJson).error;
      assert.equal(err.code, 'VALIDATION_FAILED');
      assert.match(err.message, /too large: at most 65536 bytes/);
      assert.equal(err.limitBytes, LIMIT);
      const get = await fetch(`${base}/v1/campaigns/${id}`, { headers: t.auth });
      assert.equal(get.status, 404);
    }
  });

  test('a streamed (chunked) body that passes the limit part-way is answered the same', async () => {
    const chunk = new TextEncoder().encode(`{"name":"x","stock":1,"pad":"${'y'.repeat(16_000)}`);
    let n = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (n++ < 40) controller.enqueue(chunk);
        else {
          controller.enqueue(new TextEncoder().encode('"}'));
          controller.close();
        }
      },
    });
    const res = await fetch(`${base}/v1/campaigns`, { method: 'POST', headers: { ...t.auth, 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as ErrorJson).error.code, 'VALIDATION_FAILED');
  });

  test('a 1 MB body of the wrong media type is answered too', async () => {
    const res = await fetch(`${base}/v1/campaigns`, { method: 'POST', headers: { ...t.auth, 'content-type': 'application/xml' }, body: `<x>${'z'.repeat(1_000_000)}</x>` });
    assert.equal(res.status, 400);
    const err = ((await res.json()) as ErrorJson).error;
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.match(err.message, /application\/json/);
  });

  test('a declared length past the drain cap is answered at once, then the connection is closed', async () => {
    const data = await exchange(`POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.auth.authorization}\r\nContent-Type: application/json\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n{"pad":"`);
    assert.match(data, /^HTTP\/1\.1 400 /);
    assert.match(data, /connection: close/i);
    assert.match(data, /"code":"VALIDATION_FAILED"/);
  });

  test('a chunked body that never ends is cut once past the drain cap', async () => {
    const socket = connect({ port: Number(new URL(base).port), host: '127.0.0.1' });
    socket.on('error', () => {});
    let closed = false;
    socket.once('close', () => (closed = true));
    await new Promise<void>((r) => socket.once('connect', () => r()));
    socket.write(`POST /v1/campaigns HTTP/1.1\r\nHost: x\r\nAuthorization: ${t.auth.authorization}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const piece = `10000\r\n${'p'.repeat(0x10000)}\r\n`;
    let sent = 0;
    while (!closed && sent < 64 * 1024 * 1024) {
      if (!socket.write(piece)) await new Promise<void>((r) => (socket.destroyed ? r() : socket.once('drain', () => r()).once('close', () => r())));
      sent += 0x10000;
    }
    await new Promise<void>((r) => (closed ? r() : socket.once('close', () => r())));
    assert.ok(sent < 64 * 1024 * 1024, `the server read ${sent} bytes without cutting`);
  });
});

describe('requests the HTTP parser refuses', () => {
  test('a malformed request, or headers over 16 KiB: 400 VALIDATION_FAILED in the API shape, then closed', async () => {
    for (const raw of ['NOT AN HTTP REQUEST\r\n\r\n', `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`]) {
      const data = await exchange(raw);
      assert.match(data, /^HTTP\/1\.1 400 /, data.slice(0, 200));
      assert.match(data, /connection: close/i);
      const err = (JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)) as ErrorJson).error;
      assert.equal(err.code, 'VALIDATION_FAILED');
      assert.match(err.message, /malformed HTTP request|headers are too large/);
    }
  });
});

describe('405 Method Not Allowed', () => {
  async function call(method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS', url: string, auth = true): Promise<LightMyRequestResponse> {
    return t.app.inject({ method, url, headers: auth ? t.auth : {} });
  }

  function assert405(res: LightMyRequestResponse, allow: string): void {
    assert.equal(res.statusCode, 405, res.body);
    assert.equal(res.headers.allow, allow);
    const err = (res.json() as ErrorJson).error;
    assert.equal(err.code, 'METHOD_NOT_ALLOWED');
    assert.deepEqual(err.allow, allow.split(', '));
    assert.match(err.message, new RegExp(`use ${allow}`));
  }

  test('a wrong method on a known /v1 path: 405 with Allow and the API error shape', async () => {
    assert405(await call('DELETE', `/v1/campaigns/${uid()}`), 'GET, HEAD');
    assert405(await call('PUT', '/v1/campaigns'), 'GET, HEAD, POST');
    assert405(await call('PATCH', `/v1/campaigns/${uid()}/claims`), 'GET, HEAD, POST');
    assert405(await call('GET', `/v1/campaigns/${uid()}/stock`), 'POST');
    assert405(await call('OPTIONS', '/v1/transfers?state=unknown'), 'GET, HEAD, POST');
  });

  test('outside /v1 too, without a token', async () => {
    assert405(await call('POST', '/healthz', false), 'GET, HEAD');
    assert405(await call('DELETE', '/metrics', false), 'GET, HEAD');
  });

  test('/v1 asks for the token first: 401 before 405', async () => {
    const res = await call('DELETE', `/v1/campaigns/${uid()}`, false);
    assert.equal(res.statusCode, 401);
    assert.equal(res.headers['www-authenticate'], 'Bearer');
    assert.equal(res.headers.allow, undefined);
    assert.equal((res.json() as ErrorJson).error.code, 'UNAUTHORIZED');
  });

  test('an unknown path stays 404', async () => {
    for (const [method, url] of [['GET', '/v1/nope'], ['DELETE', '/v1/campaigns/a/b/c'], ['POST', '/nope']] as const) {
      const res = await call(method, url);
      assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
      assert.equal((res.json() as ErrorJson).error.code, 'NOT_FOUND');
      assert.equal(res.headers.allow, undefined);
    }
  });
});

describe('error.problems', () => {
  const PATH = /^(body|querystring|params|headers)(\/[^/]+)*$/;

  async function problemsOf(method: 'POST' | 'GET', url: string, payload?: unknown): Promise<unknown[]> {
    const res = await t.app.inject({ method, url, headers: t.auth, ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });
    assert.equal(res.statusCode, 400, res.body);
    const err = (res.json() as ErrorJson).error;
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.ok(Array.isArray(err.problems) && err.problems.length > 0, `no problems: ${res.body}`);
    return err.problems as unknown[];
  }

  function assertShape(problems: unknown[], where: string): void {
    for (const p of problems) {
      assert.ok(p !== null && typeof p === 'object' && !Array.isArray(p), `${where}: ${JSON.stringify(p)}`);
      const o = p as Record<string, unknown>;
      assert.deepEqual(Object.keys(o).filter((k) => !['path', 'message', 'field'].includes(k)), [], `${where}: ${JSON.stringify(p)}`);
      assert.match(String(o.path), PATH, `${where}: path of ${JSON.stringify(p)}`);
      assert.equal(typeof o.message, 'string');
      assert.ok((o.message as string).length > 0);
      if ('field' in o) assert.equal(typeof o.field, 'string');
    }
  }

  test('schema, domain and amount validation all give [{path, message, field?}]', async () => {
    const cases: Array<[string, 'POST' | 'GET', string, unknown]> = [
      ['schema: wrong type', 'POST', '/v1/campaigns', { name: 'x', stock: -1 }],
      ['schema: unknown field', 'POST', '/v1/campaigns', { name: 'x', stock: 1, colour: 'red' }],
      ['schema: missing field', 'POST', '/v1/campaigns', { stock: 1 }],
      ['schema: querystring', 'GET', '/v1/campaigns?limit=abc', undefined],
      ['domain: coupon without stock', 'POST', '/v1/campaigns', { name: 'x' }],
      ['domain: lottery rules', 'POST', '/v1/campaigns', { kind: 'lottery', name: 'x', stock: 3, prizes: [{ id: 'a', name: 'A', stock: 1, weight: 1 }, { id: 'a', name: 'B', stock: 1, weight: 1 }], fallback: 'zz' }],
      ['domain: dates', 'POST', '/v1/campaigns', { name: 'x', stock: 1, startsAt: '2026-02-30T00:00:00Z', endsAt: 'tomorrow' }],
      ['payouts: amount', 'POST', '/v1/fundings', { fundingId: uid('f'), userId: 'u', asset: 'USD', amount: 1.5 }],
    ];
    for (const [name, method, url, payload] of cases) assertShape(await problemsOf(method, url, payload), name);
  });

  test('domain problems name the field they are about', async () => {
    const lottery = await problemsOf('POST', '/v1/campaigns', { kind: 'lottery', name: 'x', stock: 3, prizes: [{ id: 'a', name: 'A', stock: 1, weight: 1 }, { id: 'a', name: 'B', stock: 1, weight: 1 }], fallback: 'zz' });
    assert.deepEqual((lottery as Array<{ path: string }>).map((p) => p.path), ['body/stock', 'body/prizes/1/id', 'body/fallback']);
    const dates = await problemsOf('POST', '/v1/campaigns', { name: 'x', stock: 1, startsAt: '2026-02-30T00:00:00Z', endsAt: 'tomorrow' });
    assert.deepEqual(dates, [
      { path: 'body/startsAt', message: 'startsAt is not a valid date: 2026-02-30T00:00:00Z' },
      { path: 'body/endsAt', message: 'endsAt must be an ISO-8601 instant with a zone, e.g. 2026-11-22T10:00:00Z' },
    ]);
    const unknown = await problemsOf('POST', '/v1/campaigns', { name: 'x', stock: 1, colour: 'red' });
    assert.deepEqual(unknown, [{ path: 'body', message: 'unknown field "colour"', field: 'colour' }]);
    const missing = await problemsOf('POST', '/v1/campaigns', { stock: 1 });
    assert.deepEqual(missing, [{ path: 'body', message: "must have required property 'name'", field: 'name' }]);
  });
});
