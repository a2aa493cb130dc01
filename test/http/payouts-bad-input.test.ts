// The payouts bad-input battery: every malformed, mistyped, out-of-range or refused request to
// the payout routes is a 4xx with the API error shape, never a 5xx, and changes nothing: the
// probe users' balances, every transfer order, the ledger audit and the row counts of the
// payout tables are the same before and after the battery.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { ERROR_CODE, makeApp, uid, type TestApp } from '../helpers/app.ts';

type Method = 'GET' | 'POST';

interface Case {
  name: string;
  method: Method;
  url: string;
  /** An object is sent as JSON; `raw` is sent as is (Content-Type application/json unless headers say otherwise). */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  noAuth?: boolean;
  status: number;
  code: string;
  /** what the error message must say */
  message?: RegExp;
}

const PROBE = 'u-probe';
const RICH = 'u-rich';
const BROKE = 'u-broke';
const PROBE_KEY = 'probe-key';
const PROBE_ORDER = 'o-probe';
const LONG_ID = 'x'.repeat(129);
const MAX_I64 = '9223372036854775807';

let t: TestApp;
let snapshotBefore: unknown;

async function snapshot(): Promise<unknown> {
  const balances = Object.fromEntries(await Promise.all([PROBE, RICH, BROKE].map(async (u) => [u, await t.service.payouts.balanceViews(u)] as const)));
  const transfers = (await t.service.payouts.listTransfers(null, 1000, null)).items;
  const audit = await t.service.payouts.audit();
  const counts: Record<string, number> = {};
  for (const table of ['fundings', 'withdrawals', 'transfers', 'transfer_outbox', 'ledger_accounts', 'ledger_entries', 'ledger_lines']) {
    const r = await sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql.table(table)}`.execute(t.service.db);
    counts[table] = Number(r.rows[0]!.n);
  }
  return { balances, transfers, audit, counts };
}

before(async () => {
  t = await makeApp();
  const post = async (url: string, payload: object, headers: Record<string, string> = {}) => {
    const r = await t.app.inject({ method: 'POST', url, headers: { ...t.auth, ...headers }, payload });
    assert.ok(r.statusCode === 201 || r.statusCode === 202, `${url}: ${r.statusCode} ${r.body}`);
  };
  await post('/v1/fundings', { fundingId: 'f-probe', userId: PROBE, asset: 'CNY', amount: 1000 });
  await post('/v1/fundings', { fundingId: 'f-rich', userId: RICH, asset: 'BIG', amount: MAX_I64 });
  await post('/v1/withdrawals', { userId: PROBE, asset: 'CNY', amount: 100 }, { 'idempotency-key': PROBE_KEY });
  await post('/v1/transfers', { orderId: PROBE_ORDER, userId: PROBE, asset: 'CNY', amount: 50, destination: 'addr-probe' });
  await t.service.payouts.idle();
  assert.equal((await t.service.payouts.getTransfer(PROBE_ORDER)).state, 'succeeded');
  snapshotBefore = await snapshot();
  const s = snapshotBefore as { balances: Record<string, unknown>; audit: { ok: boolean } };
  assert.deepEqual(s.balances[PROBE], [{ asset: 'CNY', available: 850, held: 0, paidOut: 150 }]);
  assert.equal(s.audit.ok, true);
});

after(async () => {
  await t?.close();
});

async function send(c: Case): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...(c.noAuth ? {} : t.auth) };
  let payload: string | undefined;
  if (c.raw !== undefined) {
    headers['content-type'] = 'application/json';
    payload = c.raw;
  } else if (c.body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(c.body);
  }
  Object.assign(headers, c.headers);
  return t.app.inject({ method: c.method, url: c.url, headers, ...(payload !== undefined ? { payload } : {}) });
}

function run(cases: Case[]): void {
  for (const c of cases) {
    test(c.name, async () => {
      const res = await send(c);
      const where = `${c.method} ${c.url.slice(0, 120)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
      assert.ok(res.statusCode < 500, `5xx: ${where}`);
      assert.equal(res.statusCode, c.status, where);
      assert.match(String(res.headers['content-type']), /^application\/json/, where);
      const body = JSON.parse(res.body) as Record<string, unknown>;
      assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), where);
      assert.deepEqual(Object.keys(body), ['error'], where);
      const err = body.error as Record<string, unknown>;
      assert.match(String(err.code), ERROR_CODE, where);
      assert.equal(err.code, c.code, where);
      assert.equal(typeof err.message, 'string', where);
      assert.ok(String(err.message).length > 0, where);
      if (c.message) assert.match(String(err.message), c.message, where);
      assert.equal(res.headers['idempotent-replayed'], undefined, where);
    });
  }
}

const bad = (name: string, rest: Omit<Case, 'name' | 'status' | 'code'>): Case => ({ name, status: 400, code: 'VALIDATION_FAILED', ...rest });
const unauthorized = (name: string, rest: Omit<Case, 'name' | 'status' | 'code'>): Case => ({ name, status: 401, code: 'UNAUTHORIZED', ...rest });

function bodyShapeCases(label: string, url: string, valid: Record<string, unknown>, headers: Record<string, string> = {}): Case[] {
  const h = { headers };
  return [
    bad(`${label}: malformed JSON (truncated)`, { method: 'POST', url, raw: '{"userId":', ...h }),
    bad(`${label}: malformed JSON (trailing comma)`, { method: 'POST', url, raw: `${JSON.stringify(valid).slice(0, -1)},}`, ...h }),
    bad(`${label}: empty body`, { method: 'POST', url, raw: '', ...h }),
    bad(`${label}: no body and no Content-Type`, { method: 'POST', url, ...h }),
    bad(`${label}: body is a JSON array`, { method: 'POST', url, raw: JSON.stringify([valid]), ...h }),
    bad(`${label}: body is JSON null`, { method: 'POST', url, raw: 'null', ...h }),
    bad(`${label}: body is a JSON string`, { method: 'POST', url, raw: '"x"', ...h }),
    bad(`${label}: an unknown field`, { method: 'POST', url, body: { ...valid, extra: 1 }, ...h }),
    bad(`${label}: a field name in the wrong case`, { method: 'POST', url, body: { ...valid, Amount: 1 }, ...h }),
    bad(`${label}: __proto__ pollution attempt`, { method: 'POST', url, raw: `${JSON.stringify(valid).slice(0, -1)},"__proto__":{"polluted":true}}`, ...h }),
    bad(`${label}: Content-Type text/plain`, { method: 'POST', url, raw: JSON.stringify(valid), headers: { ...headers, 'content-type': 'text/plain' } }),
    bad(`${label}: body larger than the 64 KiB limit`, { method: 'POST', url, raw: JSON.stringify({ ...valid, pad: 'x'.repeat(70 * 1024) }), ...h }),
    unauthorized(`${label}: missing Authorization`, { method: 'POST', url, body: valid, noAuth: true, ...h }),
    unauthorized(`${label}: wrong token`, { method: 'POST', url, body: valid, headers: { ...headers, authorization: 'Bearer wrong-token-0123456789abcdef' } }),
  ];
}

/** Amounts that are never valid, as JSON values or raw JSON text, with what the message says. */
const BAD_AMOUNTS: Array<{ name: string; json?: unknown; raw?: string; message?: RegExp }> = [
  { name: 'negative', json: -5, message: /at least 1/ },
  { name: 'zero', json: 0, message: /at least 1/ },
  { name: 'minus zero (raw -0)', raw: '-0', message: /at least 1/ },
  { name: 'fractional 1.5', json: 1.5, message: /fraction/ },
  { name: 'fractional 0.5', json: 0.5 },
  { name: 'decimal string "12.5"', json: '12.5', message: /decimal string of digits/ },
  { name: 'negative string "-5"', json: '-5' },
  { name: 'exponent string "1e3"', json: '1e3' },
  { name: 'leading space " 5"', json: ' 5' },
  { name: 'trailing space "5 "', json: '5 ' },
  { name: 'plus sign "+5"', json: '+5' },
  { name: 'empty string', json: '' },
  { name: 'string "0"', json: '0', message: /at least 1/ },
  { name: 'leading zeros "007"', json: '007', message: /leading zeros/ },
  { name: 'true', json: true },
  { name: 'null', json: null },
  { name: 'an array [5]', json: [5] },
  { name: 'an object', json: { value: 5 } },
  { name: '9007199254740993 as a JSON number (not exact)', raw: '9007199254740993', message: /decimal string/ },
  { name: '2^53 as a JSON number', raw: '9007199254740992', message: /decimal string/ },
  { name: '1e300 as a JSON number', raw: '1e300', message: /decimal string/ },
  { name: '1e400 (Infinity after parsing)', raw: '1e400' },
  { name: '"9223372036854775808" (2^63)', json: '9223372036854775808', message: /9223372036854775807/ },
  { name: '"99999999999999999999" (20 digits)', json: '99999999999999999999', message: /9223372036854775807/ },
  { name: 'a duplicate key whose last value is negative', raw: 'DUP' },
];

function amountCases(label: string, url: string, valid: Record<string, unknown>, headers: Record<string, string> = {}): Case[] {
  return BAD_AMOUNTS.map((a) => {
    const rest = { ...valid };
    delete rest.amount;
    let raw: string;
    if (a.raw === 'DUP') raw = `${JSON.stringify(rest).slice(0, -1)},"amount":5,"amount":-5}`;
    else if (a.raw !== undefined) raw = `${JSON.stringify(rest).slice(0, -1)},"amount":${a.raw}}`;
    else raw = JSON.stringify({ ...rest, amount: a.json });
    return bad(`${label}: amount ${a.name}`, { method: 'POST', url, raw, headers, ...(a.message ? { message: a.message } : {}) });
  });
}

function fieldCases(label: string, url: string, valid: Record<string, unknown>, headers: Record<string, string> = {}): Case[] {
  const cases: Case[] = [];
  const c = (name: string, body: unknown) => cases.push(bad(`${label}: ${name}`, { method: 'POST', url, body, headers }));
  for (const field of Object.keys(valid)) {
    const rest = { ...valid };
    delete rest[field];
    c(`${field} missing`, rest);
    c(`${field} null`, { ...valid, [field]: null });
    if (field !== 'amount') {
      c(`${field} a number`, { ...valid, [field]: 5 });
      c(`${field} empty`, { ...valid, [field]: '' });
    }
  }
  for (const field of ['fundingId', 'userId', 'orderId'].filter((f) => f in valid)) {
    c(`${field} of 129 characters`, { ...valid, [field]: LONG_ID });
    c(`${field} with a space`, { ...valid, [field]: 'a b' });
    c(`${field} with a slash`, { ...valid, [field]: 'a/b' });
    c(`${field} with a NUL`, { ...valid, [field]: 'a\u0000b' });
    c(`${field} with a non-ASCII letter`, { ...valid, [field]: 'ä' });
  }
  c('asset in lower case ("cny")', { ...valid, asset: 'cny' });
  c('asset with a space', { ...valid, asset: 'C NY' });
  c('asset of 33 characters', { ...valid, asset: 'A'.repeat(33) });
  c('asset starting with a dot', { ...valid, asset: '.CNY' });
  return cases;
}

const FUNDING = { fundingId: 'f-new', userId: PROBE, asset: 'CNY', amount: 5 };
const WITHDRAWAL = { userId: PROBE, asset: 'CNY', amount: 5 };
const KEY = { 'idempotency-key': 'battery-key' };
const TRANSFER = { orderId: 'o-new', userId: PROBE, asset: 'CNY', amount: 5, destination: 'addr-1' };

describe('POST /v1/fundings: bad input', () => {
  run(bodyShapeCases('POST fundings', '/v1/fundings', FUNDING));
  run(amountCases('POST fundings', '/v1/fundings', FUNDING));
  run(fieldCases('POST fundings', '/v1/fundings', FUNDING));
  run([
    { name: 'POST fundings: the probe funding id with another amount is 409 FUNDING_EXISTS', method: 'POST', url: '/v1/fundings', body: { ...FUNDING, fundingId: 'f-probe', amount: 999 }, status: 409, code: 'FUNDING_EXISTS' },
    { name: 'POST fundings: the probe funding id for another user is 409 FUNDING_EXISTS', method: 'POST', url: '/v1/fundings', body: { ...FUNDING, fundingId: 'f-probe', userId: BROKE, amount: 1000 }, status: 409, code: 'FUNDING_EXISTS' },
    bad('POST fundings: a balance past 2^63-1', { method: 'POST', url: '/v1/fundings', body: { fundingId: 'f-overflow', userId: RICH, asset: 'BIG', amount: 1 }, message: /9223372036854775807/ }),
  ]);
});

describe('POST /v1/withdrawals: bad input', () => {
  run(bodyShapeCases('POST withdrawals', '/v1/withdrawals', WITHDRAWAL, KEY));
  run(amountCases('POST withdrawals', '/v1/withdrawals', WITHDRAWAL, KEY));
  run(fieldCases('POST withdrawals', '/v1/withdrawals', WITHDRAWAL, KEY));
  const w = (name: string, body: unknown, headers: Record<string, string>, status: number, code: string): Case => ({ name: `POST withdrawals: ${name}`, method: 'POST', url: '/v1/withdrawals', body, headers, status, code });
  run([
    w('no Idempotency-Key is 400 IDEMPOTENCY_KEY_REQUIRED', WITHDRAWAL, {}, 400, 'IDEMPOTENCY_KEY_REQUIRED'),
    w('no Idempotency-Key and short funds is still 400 IDEMPOTENCY_KEY_REQUIRED', { ...WITHDRAWAL, amount: 10_000 }, {}, 400, 'IDEMPOTENCY_KEY_REQUIRED'),
    w('Idempotency-Key empty', WITHDRAWAL, { 'idempotency-key': '' }, 400, 'VALIDATION_FAILED'),
    w('Idempotency-Key of 256 characters', WITHDRAWAL, { 'idempotency-key': 'k'.repeat(256) }, 400, 'VALIDATION_FAILED'),
    w('Idempotency-Key with a tab', WITHDRAWAL, { 'idempotency-key': 'a\tb' }, 400, 'VALIDATION_FAILED'),
    w('Idempotency-Key with a latin-1 byte', WITHDRAWAL, { 'idempotency-key': 'k\xe4' }, 400, 'VALIDATION_FAILED'),
    w('the probe key reused for another amount is 422', { ...WITHDRAWAL, amount: 101 }, { 'idempotency-key': PROBE_KEY }, 422, 'IDEMPOTENCY_KEY_REUSED'),
    w('the probe key reused for another asset is 422', { ...WITHDRAWAL, asset: 'BIG', amount: 100 }, { 'idempotency-key': PROBE_KEY }, 422, 'IDEMPOTENCY_KEY_REUSED'),
    w('more than the available balance is 409', { ...WITHDRAWAL, amount: 851 }, { 'idempotency-key': uid('k') }, 409, 'INSUFFICIENT_FUNDS'),
    w('a user with no account is 409', { ...WITHDRAWAL, userId: BROKE }, { 'idempotency-key': uid('k') }, 409, 'INSUFFICIENT_FUNDS'),
    w('an asset nobody holds is 404', { ...WITHDRAWAL, asset: 'NOPE' }, { 'idempotency-key': uid('k') }, 404, 'ASSET_NOT_FOUND'),
    w('the max amount as a string, short funds', { ...WITHDRAWAL, amount: MAX_I64 }, { 'idempotency-key': uid('k') }, 409, 'INSUFFICIENT_FUNDS'),
  ]);
});

describe('POST /v1/transfers: bad input', () => {
  run(bodyShapeCases('POST transfers', '/v1/transfers', TRANSFER));
  run(amountCases('POST transfers', '/v1/transfers', TRANSFER));
  run(fieldCases('POST transfers', '/v1/transfers', TRANSFER));
  const c = (name: string, body: unknown, status = 400, code = 'VALIDATION_FAILED'): Case => ({ name: `POST transfers: ${name}`, method: 'POST', url: '/v1/transfers', body, status, code });
  run([
    c('destination with a newline', { ...TRANSFER, destination: 'addr\n1' }),
    c('destination with a NUL', { ...TRANSFER, destination: 'addr\u00001' }),
    c('destination with a tab', { ...TRANSFER, destination: 'addr\t1' }),
    c('destination with DEL', { ...TRANSFER, destination: 'addr\u007f' }),
    c('destination of 257 characters', { ...TRANSFER, destination: 'd'.repeat(257) }),
    c('destination an object', { ...TRANSFER, destination: { iban: 'x' } }),
    c('the probe order with another amount is 409 ORDER_EXISTS', { ...TRANSFER, orderId: PROBE_ORDER, destination: 'addr-probe', amount: 51 }, 409, 'ORDER_EXISTS'),
    c('the probe order to another destination is 409 ORDER_EXISTS', { ...TRANSFER, orderId: PROBE_ORDER, destination: 'addr-other', amount: 50 }, 409, 'ORDER_EXISTS'),
    c('more than the available balance is 409', { ...TRANSFER, orderId: uid('o'), amount: 851 }, 409, 'INSUFFICIENT_FUNDS'),
    c('a user with no account is 409', { ...TRANSFER, orderId: uid('o'), userId: BROKE }, 409, 'INSUFFICIENT_FUNDS'),
    c('an asset nobody holds is 404', { ...TRANSFER, orderId: uid('o'), asset: 'NOPE' }, 404, 'ASSET_NOT_FOUND'),
  ]);
});

describe('POST /v1/transfers/:orderId/resolve: bad input', () => {
  const url = `/v1/transfers/${PROBE_ORDER}/resolve`;
  const valid = { outcome: 'failed', note: 'checked' };
  run(bodyShapeCases('POST resolve', url, valid));
  const c = (name: string, body: unknown, u = url, status = 400, code = 'VALIDATION_FAILED'): Case => ({ name: `POST resolve: ${name}`, method: 'POST', url: u, body, status, code });
  run([
    c('outcome "maybe"', { ...valid, outcome: 'maybe' }),
    c('outcome in upper case', { ...valid, outcome: 'FAILED' }),
    c('outcome "unknown"', { ...valid, outcome: 'unknown' }),
    c('outcome missing', { note: 'x' }),
    c('outcome null', { ...valid, outcome: null }),
    c('outcome true', { ...valid, outcome: true }),
    c('note missing', { outcome: 'failed' }),
    c('note empty', { ...valid, note: '' }),
    c('note of 1001 characters', { ...valid, note: 'n'.repeat(1001) }),
    c('note with a newline', { ...valid, note: 'a\nb' }),
    c('note with a NUL', { ...valid, note: 'a\u0000b' }),
    c('note a number', { ...valid, note: 5 }),
    c('order id with a space in the path', valid, '/v1/transfers/a%20b/resolve'),
    c('order id of 129 characters in the path', valid, `/v1/transfers/${LONG_ID}/resolve`),
    c('an unknown order is 404', valid, `/v1/transfers/${uid('missing')}/resolve`, 404, 'ORDER_NOT_FOUND'),
    c('a succeeded order is 409 ORDER_NOT_UNKNOWN (failed)', valid, url, 409, 'ORDER_NOT_UNKNOWN'),
    c('a succeeded order is 409 ORDER_NOT_UNKNOWN (succeeded)', { ...valid, outcome: 'succeeded' }, url, 409, 'ORDER_NOT_UNKNOWN'),
  ]);
});

describe('GET payout routes: bad input', () => {
  const g = (name: string, url: string): Case => bad(`GET ${name}`, { method: 'GET', url });
  run([
    g('balances of a user id with a space', '/v1/accounts/a%20b/balances'),
    g('balances of a user id of 129 characters', `/v1/accounts/${LONG_ID}/balances`),
    g('balances of a user id with an encoded slash', '/v1/accounts/a%2Fb/balances'),
    g('transfer id with a space', '/v1/transfers/a%20b'),
    g('transfer id of 129 characters', `/v1/transfers/${LONG_ID}`),
    g('transfers?state=bogus', '/v1/transfers?state=bogus'),
    g('transfers?state=UNKNOWN (case matters)', '/v1/transfers?state=UNKNOWN'),
    g('transfers?state empty', '/v1/transfers?state='),
    g('transfers?limit=0', '/v1/transfers?limit=0'),
    g('transfers?limit=1001', '/v1/transfers?limit=1001'),
    g('transfers?limit=abc', '/v1/transfers?limit=abc'),
    g('transfers?limit=-1', '/v1/transfers?limit=-1'),
    g('transfers?cursor with bad characters', '/v1/transfers?cursor=!!!'),
    g('transfers?cursor that decodes to an invalid id', `/v1/transfers?cursor=${Buffer.from('a b').toString('base64url')}`),
    g('transfers?cursor that decodes to invalid UTF-8', '/v1/transfers?cursor=____'),
    g('transfers with an unknown query parameter', '/v1/transfers?userId=u'),
    { name: 'GET an unknown transfer is 404', method: 'GET', url: `/v1/transfers/${uid('missing')}`, status: 404, code: 'ORDER_NOT_FOUND' },
    unauthorized('GET balances without a token', { method: 'GET', url: `/v1/accounts/${PROBE}/balances`, noAuth: true }),
    unauthorized('GET transfers with a wrong token', { method: 'GET', url: '/v1/transfers', headers: { authorization: 'Bearer wrong' } }),
    unauthorized('GET a transfer without a token', { method: 'GET', url: `/v1/transfers/${PROBE_ORDER}`, noAuth: true }),
    unauthorized('GET the ledger audit without a token', { method: 'GET', url: '/v1/ledger/audit', noAuth: true }),
  ]);
});

test('the battery changed nothing in the ledger', async () => {
  const now = await snapshot();
  assert.deepEqual(now, snapshotBefore);
  assert.equal((now as { audit: { ok: boolean } }).audit.ok, true);
  // the probe user still works: the battery did not poison keys or accounts
  const ok = await t.app.inject({ method: 'POST', url: '/v1/withdrawals', headers: { ...t.auth, 'idempotency-key': 'battery-key' }, payload: { userId: PROBE, asset: 'CNY', amount: 5 } });
  assert.equal(ok.statusCode, 201, ok.body);
  const replay = await t.app.inject({ method: 'POST', url: '/v1/withdrawals', headers: { ...t.auth, 'idempotency-key': PROBE_KEY }, payload: { userId: PROBE, asset: 'CNY', amount: 100 } });
  assert.equal(replay.statusCode, 201);
  assert.equal(replay.headers['idempotent-replayed'], 'true');
  assert.deepEqual(await t.service.payouts.balanceViews(PROBE), [{ asset: 'CNY', available: 845, held: 0, paidOut: 155 }]);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
