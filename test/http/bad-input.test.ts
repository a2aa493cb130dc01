// The bad-input battery: every malformed, mistyped, out-of-range, oversized or unauthenticated
// request is a 4xx with the API error shape ({"error":{"code":"UPPER_SNAKE","message"}}), never a
// 5xx, and changes nothing in the store (checked by a snapshot before and after the battery).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { ERROR_CODE, makeApp, uid, type TestApp } from '../helpers/app.ts';

type Method = 'GET' | 'POST';

interface Case {
  name: string;
  method: Method;
  /** A function, because the probe campaign's id is only known after `before`. */
  url: () => string;
  /** An object is sent as JSON; a string is sent raw (Content-Type application/json unless headers say otherwise). */
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** Leave out the Authorization header (or replace it via headers). */
  noAuth?: boolean;
  status: number;
  code: string;
}

let t: TestApp;
let probe: string;
let lotteryProbe: string;
let couponClaimId: string;
let snapshotBefore: unknown;

const VALID_CAMPAIGN = { name: 'valid', stock: 1 };
const LONG_ID = 'x'.repeat(129);

async function snapshot(): Promise<unknown> {
  const campaigns: unknown[] = [];
  let cursor: string | null = null;
  do {
    const page = await t.service.listCampaigns(1000, cursor);
    campaigns.push(...page.items.map((c) => ({ ...c })));
    cursor = page.nextCursor;
  } while (cursor !== null);
  const claims = await t.service.store.listClaims(probe, null, 1000, null);
  const audit = await t.service.audit(probe);
  const lotteryAudit = await t.service.audit(lotteryProbe);
  // The API's own views too (per-prize stock, paused), and whether the seed is still secret.
  const views = await Promise.all([probe, lotteryProbe].map(async (id) => (await t.app.inject({ method: 'GET', url: `/v1/campaigns/${id}`, headers: t.auth })).json() as unknown));
  const seed = await t.service.store.getSeed(lotteryProbe);
  return { campaigns, claims, audit, lotteryAudit, views, seedRevealedAt: seed?.revealedAt ?? null };
}

before(async () => {
  t = await makeApp();
  probe = uid('probe');
  const res = await t.app.inject({ method: 'POST', url: '/v1/campaigns', headers: t.auth, payload: { id: probe, name: 'probe', stock: 5, perUserLimit: 2 } });
  assert.equal(res.statusCode, 201, res.body);
  for (const [userId, key] of [['u-probe', 'probe-key'], ['u-other', undefined]] as const) {
    const r = await t.app.inject({
      method: 'POST',
      url: `/v1/campaigns/${probe}/claims`,
      headers: { ...t.auth, ...(key ? { 'idempotency-key': key } : {}) },
      payload: { userId },
    });
    assert.equal(r.statusCode, 201, r.body);
    couponClaimId ??= (r.json() as { claim: { id: string } }).claim.id;
  }
  lotteryProbe = uid('lprobe');
  const lot = await t.app.inject({
    method: 'POST', url: '/v1/campaigns', headers: t.auth,
    payload: { id: lotteryProbe, kind: 'lottery', name: 'lottery probe', prizes: [{ id: 'p1', name: 'Phone', stock: 3, weight: 1 }, { id: 'p2', name: 'Mug', stock: 2147483640, weight: 5 }] },
  });
  assert.equal(lot.statusCode, 201, lot.body);
  snapshotBefore = await snapshot();
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
  return t.app.inject({ method: c.method, url: c.url(), headers, ...(payload !== undefined ? { payload } : {}) });
}

function checkErrorShape(res: LightMyRequestResponse, c: Case): void {
  const where = `${c.method} ${c.url().slice(0, 120)} -> ${res.statusCode} ${res.body.slice(0, 300)}`;
  assert.ok(res.statusCode < 500, `5xx: ${where}`);
  assert.equal(res.statusCode, c.status, where);
  assert.match(String(res.headers['content-type']), /^application\/json/, where);
  let body: unknown;
  assert.doesNotThrow(() => {
    body = JSON.parse(res.body);
  }, `not JSON: ${where}`);
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), where);
  assert.deepEqual(Object.keys(body as object), ['error'], where);
  const err = (body as { error: unknown }).error as Record<string, unknown>;
  assert.ok(err !== null && typeof err === 'object' && !Array.isArray(err), where);
  assert.equal(typeof err.code, 'string', where);
  assert.match(err.code as string, ERROR_CODE, where);
  assert.equal(err.code, c.code, where);
  assert.equal(typeof err.message, 'string', where);
  assert.ok((err.message as string).length > 0, where);
}

function run(cases: Case[]): void {
  for (const c of cases) {
    test(c.name, async () => {
      checkErrorShape(await send(c), c);
    });
  }
}

const bad = (name: string, rest: Omit<Case, 'name' | 'status' | 'code'>): Case => ({ name, status: 400, code: 'VALIDATION_FAILED', ...rest });
const unauthorized = (name: string, rest: Omit<Case, 'name' | 'status' | 'code'>): Case => ({ name, status: 401, code: 'UNAUTHORIZED', ...rest });

/** Cases for a JSON body endpoint that are the same whatever the schema. */
function bodyShapeCases(label: string, method: Method, url: () => string, valid: Record<string, unknown>): Case[] {
  const big = JSON.stringify({ ...valid, pad: 'x'.repeat(70 * 1024) });
  return [
    bad(`${label}: malformed JSON (truncated)`, { method, url, raw: '{"name":' }),
    bad(`${label}: malformed JSON (unquoted keys)`, { method, url, raw: '{name:"x",stock:1}' }),
    bad(`${label}: malformed JSON (trailing comma)`, { method, url, raw: '{"userId":"u",}' }),
    bad(`${label}: malformed JSON (garbage after the object)`, { method, url, raw: `${JSON.stringify(valid)}xyz` }),
    bad(`${label}: empty body with Content-Type JSON`, { method, url, raw: '' }),
    bad(`${label}: whitespace-only body`, { method, url, raw: '   \n' }),
    bad(`${label}: no body and no Content-Type`, { method, url }),
    bad(`${label}: body is a JSON array`, { method, url, raw: JSON.stringify([valid]) }),
    bad(`${label}: body is an empty JSON array`, { method, url, raw: '[]' }),
    bad(`${label}: body is a JSON string`, { method, url, raw: '"x"' }),
    bad(`${label}: body is a JSON number`, { method, url, raw: '5' }),
    bad(`${label}: body is JSON null`, { method, url, raw: 'null' }),
    bad(`${label}: body is JSON true`, { method, url, raw: 'true' }),
    bad(`${label}: unknown top-level field`, { method, url, body: { ...valid, extra: 1 } }),
    bad(`${label}: unknown field differing only in case`, { method, url, body: { ...valid, UserId: 'u', Name: 'x' } }),
    bad(`${label}: __proto__ pollution attempt`, { method, url, raw: `${JSON.stringify(valid).slice(0, -1)},"__proto__":{"polluted":true}}` }),
    bad(`${label}: constructor.prototype pollution attempt`, { method, url, raw: `${JSON.stringify(valid).slice(0, -1)},"constructor":{"prototype":{"polluted":true}}}` }),
    bad(`${label}: Content-Type text/plain`, { method, url, raw: JSON.stringify(valid), headers: { 'content-type': 'text/plain' } }),
    bad(`${label}: Content-Type form-urlencoded`, { method, url, raw: 'userId=u&name=x&stock=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }),
    bad(`${label}: Content-Type multipart`, { method, url, raw: '--b\r\n\r\n--b--', headers: { 'content-type': 'multipart/form-data; boundary=b' } }),
    bad(`${label}: body larger than the 64 KiB limit (70 KiB)`, { method, url, raw: big }),
    bad(`${label}: deeply nested JSON`, { method, url, raw: `${JSON.stringify(valid).slice(0, -1)},"deep":${'['.repeat(5000)}${']'.repeat(5000)}}` }),
    unauthorized(`${label}: missing Authorization`, { method, url, body: valid, noAuth: true }),
    unauthorized(`${label}: wrong token`, { method, url, body: valid, headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } }),
    unauthorized(`${label}: "Bearer" without a token`, { method, url, body: valid, headers: { authorization: 'Bearer' } }),
    unauthorized(`${label}: "Bearer " with only a space`, { method, url, body: valid, headers: { authorization: 'Bearer ' } }),
    unauthorized(`${label}: Basic auth`, { method, url, body: valid, headers: { authorization: `Basic ${Buffer.from('admin:test-admin-token-0123456789abcdef').toString('base64')}` } }),
    unauthorized(`${label}: the token without the Bearer scheme`, { method, url, body: valid, headers: { authorization: 'test-admin-token-0123456789abcdef' } }),
    unauthorized(`${label}: the token followed by another word`, { method, url, body: valid, headers: { authorization: 'Bearer test-admin-token-0123456789abcdef extra' } }),
    unauthorized(`${label}: a prefix of the token`, { method, url, body: valid, headers: { authorization: 'Bearer test-admin-token-0123456789abcde' } }),
    unauthorized(`${label}: missing Authorization and a bad body (auth is checked first)`, { method, url, raw: '{"broken', noAuth: true }),
  ];
}

const campaigns = () => '/v1/campaigns';
const probeClaims = () => `/v1/campaigns/${probe}/claims`;

describe('POST /v1/campaigns: bad input', () => {
  run(bodyShapeCases('POST /v1/campaigns', 'POST', campaigns, VALID_CAMPAIGN));
  const c = (name: string, body: unknown) => bad(`POST /v1/campaigns: ${name}`, { method: 'POST', url: campaigns, body });
  const raw = (name: string, text: string) => bad(`POST /v1/campaigns: ${name}`, { method: 'POST', url: campaigns, raw: text });
  run([
    c('missing name', { stock: 1 }),
    c('missing stock (coupon)', { name: 'x' }),
    c('stock as a string "10"', { name: 'x', stock: '10' }),
    c('stock true', { name: 'x', stock: true }),
    c('stock null', { name: 'x', stock: null }),
    c('stock as an object', { name: 'x', stock: { n: 1 } }),
    c('name as a number', { name: 5, stock: 1 }),
    c('name empty', { name: '', stock: 1 }),
    c('name 201 characters', { name: 'n'.repeat(201), stock: 1 }),
    c('name null', { name: null, stock: 1 }),
    c('negative stock', { name: 'x', stock: -1 }),
    c('stock 2^31', { name: 'x', stock: 2 ** 31 }),
    c('stock 1e20', { name: 'x', stock: 1e20 }),
    raw('stock 1e400 (raw text, Infinity)', '{"name":"x","stock":1e400}'),
    raw('stock -1e400 (raw text)', '{"name":"x","stock":-1e400}'),
    raw('stock NaN (raw text)', '{"name":"x","stock":NaN}'),
    raw('stock 99999999999999999999999 (raw text)', '{"name":"x","stock":99999999999999999999999}'),
    c('fractional stock 1.5', { name: 'x', stock: 1.5 }),
    c('fractional perUserLimit 1.5', { name: 'x', stock: 1, perUserLimit: 1.5 }),
    c('fractional perUserDailyLimit 0.5', { name: 'x', stock: 1, perUserDailyLimit: 0.5 }),
    c('perUserLimit 0', { name: 'x', stock: 1, perUserLimit: 0 }),
    c('perUserLimit negative', { name: 'x', stock: 1, perUserLimit: -3 }),
    c('perUserLimit as a string', { name: 'x', stock: 1, perUserLimit: '1' }),
    c('perUserDailyLimit 0', { name: 'x', stock: 1, perUserDailyLimit: 0 }),
    c('perUserLimit 2^31', { name: 'x', stock: 1, perUserLimit: 2 ** 31 }),
    c('id 129 characters', { id: LONG_ID, ...VALID_CAMPAIGN }),
    c('id with a space ("a b")', { id: 'a b', ...VALID_CAMPAIGN }),
    c('id with a non-ASCII letter ("ä")', { id: 'ä', ...VALID_CAMPAIGN }),
    c('id with a slash ("a/b")', { id: 'a/b', ...VALID_CAMPAIGN }),
    c('id empty ("")', { id: '', ...VALID_CAMPAIGN }),
    c('id with a newline', { id: 'a\nb', ...VALID_CAMPAIGN }),
    c('id with a NUL', { id: 'a\u0000b', ...VALID_CAMPAIGN }),
    c('id as a number', { id: 5, ...VALID_CAMPAIGN }),
    c('id null', { id: null, ...VALID_CAMPAIGN }),
    c('kind unknown ("raffle")', { kind: 'raffle', ...VALID_CAMPAIGN }),
    c('lottery without prizes', { kind: 'lottery', name: 'x' }),
    c('lottery with an empty prize list', { kind: 'lottery', name: 'x', prizes: [] }),
    c('lottery with campaign-level stock', { kind: 'lottery', name: 'x', stock: 5, prizes: [{ id: 'p', name: 'P', stock: 1, weight: 1 }] }),
    c('lottery with a prize id twice', { kind: 'lottery', name: 'x', prizes: [{ id: 'p', name: 'P', stock: 1, weight: 1 }, { id: 'p', name: 'Q', stock: 1, weight: 1 }] }),
    c('lottery whose fallback is not a prize', { kind: 'lottery', name: 'x', prizes: [{ id: 'p', name: 'P', stock: 1, weight: 1 }], fallback: 'nope' }),
    c('lottery whose prizes add up past 2^31-1', { kind: 'lottery', name: 'x', prizes: [{ id: 'p', name: 'P', stock: 2147483647, weight: 1 }, { id: 'q', name: 'Q', stock: 1, weight: 1 }] }),
    c('lottery prize with a negative weight', { kind: 'lottery', name: 'x', prizes: [{ id: 'p', name: 'P', stock: 1, weight: -1 }] }),
    c('lottery prize with an unknown field', { kind: 'lottery', name: 'x', prizes: [{ id: 'p', name: 'P', stock: 1, weight: 1, odds: 0.5 }] }),
    c('prizes on a coupon', { ...VALID_CAMPAIGN, prizes: [] }),
    c('missWeight on a coupon', { ...VALID_CAMPAIGN, missWeight: 1 }),
    c('fallback on a coupon', { ...VALID_CAMPAIGN, fallback: 'p1' }),
    c('unknown strategy', { ...VALID_CAMPAIGN, strategy: 'nope' }),
    c('strategy in upper case', { ...VALID_CAMPAIGN, strategy: 'Conditional' }),
    c('strategy empty', { ...VALID_CAMPAIGN, strategy: '' }),
    c('strategy as a number', { ...VALID_CAMPAIGN, strategy: 1 }),
    c('startsAt not a date', { ...VALID_CAMPAIGN, startsAt: 'tomorrow' }),
    c('startsAt without a zone', { ...VALID_CAMPAIGN, startsAt: '2030-01-01T00:00:00' }),
    c('startsAt a number', { ...VALID_CAMPAIGN, startsAt: 1893456000000 }),
    c('startsAt month 13', { ...VALID_CAMPAIGN, startsAt: '2030-13-01T00:00:00Z' }),
    c('startsAt 65 characters', { ...VALID_CAMPAIGN, startsAt: `2030-01-01T00:00:00.${'0'.repeat(44)}Z` }),
    c('endsAt before startsAt', { ...VALID_CAMPAIGN, startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-01T00:00:00Z' }),
    c('endsAt equal to startsAt', { ...VALID_CAMPAIGN, startsAt: '2030-01-02T00:00:00Z', endsAt: '2030-01-02T00:00:00Z' }),
    raw('duplicate key, the last one invalid', '{"name":"x","stock":1,"stock":-1}'),
    { ...c('name with a NUL character', { name: 'a\u0000b', stock: 1 }) },
  ]);
});

describe('POST /v1/campaigns/:id/claims: bad input', () => {
  run(bodyShapeCases('POST claims', 'POST', probeClaims, { userId: 'u-new' }));
  const c = (name: string, body: unknown, headers?: Record<string, string>) =>
    bad(`POST claims: ${name}`, { method: 'POST', url: probeClaims, body, ...(headers ? { headers } : {}) });
  run([
    c('userId missing ({})', {}),
    c('userId null', { userId: null }),
    c('userId a number', { userId: 42 }),
    c('userId true', { userId: true }),
    c('userId an array', { userId: ['u'] }),
    c('userId empty', { userId: '' }),
    c('userId 129 characters', { userId: 'u'.repeat(129) }),
    c('userId with a space', { userId: 'a b' }),
    c('userId with a non-ASCII letter', { userId: 'ä' }),
    c('userId with a slash', { userId: 'a/b' }),
    c('userId with a NUL', { userId: 'a\u0000b' }),
    c('userId with a newline', { userId: 'u\n' }),
    c('Idempotency-Key of 256 characters', { userId: 'u-new' }, { 'idempotency-key': 'k'.repeat(256) }),
    c('Idempotency-Key with a tab', { userId: 'u-new' }, { 'idempotency-key': 'a\tb' }),
    c('Idempotency-Key with a latin-1 byte', { userId: 'u-new' }, { 'idempotency-key': 'k\xe4' }),
    c('Idempotency-Key empty', { userId: 'u-new' }, { 'idempotency-key': '' }),
    c('a replayed key with a bad body is still 400 (validation first)', { userId: 'u-probe', extra: 1 }, { 'idempotency-key': 'probe-key' }),
    bad('POST claims: campaign id with a space in the path', { method: 'POST', url: () => '/v1/campaigns/a%20b/claims', body: { userId: 'u' } }),
    bad('POST claims: campaign id with a non-ASCII letter in the path', { method: 'POST', url: () => '/v1/campaigns/%C3%A4/claims', body: { userId: 'u' } }),
    bad('POST claims: campaign id with an encoded slash in the path', { method: 'POST', url: () => '/v1/campaigns/a%2Fb/claims', body: { userId: 'u' } }),
    { ...bad('POST claims: campaign id of 129 characters in the path', { method: 'POST', url: () => `/v1/campaigns/${LONG_ID}/claims`, body: { userId: 'u' } }) },
    unauthorized('POST claims: wrong token on an unknown campaign (401 before 404)', { method: 'POST', url: () => `/v1/campaigns/${uid('missing')}/claims`, body: { userId: 'u' }, headers: { authorization: 'Bearer nope' } }),
  ]);
});

describe('GET endpoints: bad path ids', () => {
  const g = (name: string, path: string): Case => bad(`GET ${name}`, { method: 'GET', url: () => path });
  run([
    g('campaign id with a space', '/v1/campaigns/a%20b'),
    g('campaign id with a non-ASCII letter', '/v1/campaigns/%C3%A4'),
    g('campaign id with an encoded slash', '/v1/campaigns/a%2Fb'),
    g('campaign id with a NUL', '/v1/campaigns/a%00b'),
    g('campaign id of 129 characters', `/v1/campaigns/${LONG_ID}`),
    g('campaign id with a broken percent escape', '/v1/campaigns/%ZZ'),
    g('audit of a bad campaign id', '/v1/campaigns/a%20b/audit'),
    g('claims list of a bad campaign id', '/v1/campaigns/%C3%A4/claims'),
    g('claim id with a space', '/v1/claims/a%20b'),
    g('claim id with an encoded slash', '/v1/claims/a%2Fb'),
    g('claim id of 129 characters', `/v1/claims/${LONG_ID}`),
  ]);
  run([
    unauthorized('GET /v1/campaigns without a token', { method: 'GET', url: campaigns, noAuth: true }),
    unauthorized('GET /v1/campaigns/:id with Basic auth', { method: 'GET', url: () => `/v1/campaigns/${probe}`, headers: { authorization: 'Basic YTpi' } }),
    unauthorized('GET /v1/campaigns/:id/audit without a token', { method: 'GET', url: () => `/v1/campaigns/${probe}/audit`, noAuth: true }),
    unauthorized('GET /v1/campaigns/:id/claims with a wrong token', { method: 'GET', url: () => `/v1/campaigns/${probe}/claims`, headers: { authorization: 'Bearer wrong' } }),
    unauthorized('GET /v1/claims/:id without a token', { method: 'GET', url: () => '/v1/claims/clm_x', noAuth: true }),
  ]);
});

describe('list endpoints: bad limit and cursor', () => {
  const lists: Array<[string, () => string]> = [
    ['GET /v1/campaigns', () => '/v1/campaigns'],
    ['GET /v1/campaigns/:id/claims', () => `/v1/campaigns/${probe}/claims`],
  ];
  const queries: Array<[string, string]> = [
    ['limit=0', 'limit=0'],
    ['limit=1001', 'limit=1001'],
    ['limit=-1', 'limit=-1'],
    ['limit=abc', 'limit=abc'],
    ['limit=1.5', 'limit=1.5'],
    ['limit=1e3', 'limit=1e3'],
    ['limit empty', 'limit='],
    ['limit=99999', 'limit=99999'],
    ['limit given twice', 'limit=1&limit=2'],
    ['cursor with bad characters', 'cursor=!!!'],
    ['cursor empty', 'cursor='],
    ['cursor that decodes to an invalid id', `cursor=${Buffer.from('a b').toString('base64url')}`],
    ['cursor that decodes to invalid UTF-8', 'cursor=____'],
    ['cursor of 201 characters', `cursor=${'A'.repeat(201)}`],
    ['an unknown query parameter', 'foo=1'],
  ];
  for (const [label, url] of lists) {
    run(queries.map(([name, q]) => bad(`${label}?${name}`, { method: 'GET', url: () => `${url()}?${q}` })));
  }
  run([
    bad('GET /v1/campaigns/:id/claims?userId with a space', { method: 'GET', url: () => `/v1/campaigns/${probe}/claims?userId=a%20b` }),
    bad('GET /v1/campaigns/:id/claims?userId of 129 characters', { method: 'GET', url: () => `/v1/campaigns/${probe}/claims?userId=${'u'.repeat(129)}` }),
    bad('GET /v1/campaigns/:id/claims?userId empty', { method: 'GET', url: () => `/v1/campaigns/${probe}/claims?userId=` }),
  ]);
});

describe('campaign administration: bad input', () => {
  const stock = () => `/v1/campaigns/${probe}/stock`;
  const lotStock = () => `/v1/campaigns/${lotteryProbe}/stock`;
  run(bodyShapeCases('POST stock', 'POST', stock, { add: 1 }));
  const s = (name: string, body: unknown, url = stock) => bad(`POST stock: ${name}`, { method: 'POST', url, body });
  run([
    s('add 0', { add: 0 }),
    s('add -1', { add: -1 }),
    s('add 2.5', { add: 2.5 }),
    s('add as a string "5"', { add: '5' }),
    s('add null', { add: null }),
    s('add true', { add: true }),
    s('add 2^31', { add: 2 ** 31 }),
    s('add 1e20', { add: 1e20 }),
    bad('POST stock: add 1e400 (raw text)', { method: 'POST', url: stock, raw: '{"add":1e400}' }),
    s('add missing ({})', {}),
    s('prizeId only, add missing', { prizeId: 'p1' }, lotStock),
    s('an unknown field', { add: 1, note: 'x' }),
    s('prizeId on a coupon campaign', { prizeId: 'p1', add: 1 }),
    s('no prizeId on a lottery', { add: 1 }, lotStock),
    s('prizeId null', { prizeId: null, add: 1 }, lotStock),
    s('prizeId with a space', { prizeId: 'a b', add: 1 }, lotStock),
    s('coupon total past 2^31-1', { add: 2 ** 31 - 1 }),
    s('lottery total past 2^31-1 (the sum of the prizes)', { prizeId: 'p1', add: 5 }, lotStock),
    s('lottery prize past 2^31-1', { prizeId: 'p2', add: 8 }, lotStock),
    bad('POST stock: campaign id with a space in the path', { method: 'POST', url: () => '/v1/campaigns/a%20b/stock', body: { add: 1 } }),
    { name: 'POST stock: unknown prizeId is 404 PRIZE_NOT_FOUND', method: 'POST', url: lotStock, body: { prizeId: 'nope', add: 1 }, status: 404, code: 'PRIZE_NOT_FOUND' },
    unauthorized('POST stock: wrong token', { method: 'POST', url: stock, body: { add: 1 }, headers: { authorization: 'Bearer wrong' } }),
  ]);

  const notFound = (name: string, url: () => string, body?: unknown): Case => ({ name, method: 'POST', url, ...(body !== undefined ? { body } : {}), status: 404, code: 'CAMPAIGN_NOT_FOUND' });
  run([
    notFound('POST stock of an unknown campaign', () => `/v1/campaigns/${uid('missing')}/stock`, { add: 1 }),
    notFound('POST pause of an unknown campaign', () => `/v1/campaigns/${uid('missing')}/pause`),
    notFound('POST resume of an unknown campaign', () => `/v1/campaigns/${uid('missing')}/resume`),
    notFound('POST reveal of an unknown campaign', () => `/v1/campaigns/${uid('missing')}/reveal`),
  ]);

  for (const action of ['pause', 'resume'] as const) {
    const url = () => `/v1/campaigns/${probe}/${action}`;
    run([
      bad(`POST ${action}: a non-empty body`, { method: 'POST', url, body: { paused: true } }),
      bad(`POST ${action}: body is a JSON array`, { method: 'POST', url, raw: '[]' }),
      bad(`POST ${action}: body is JSON null`, { method: 'POST', url, raw: 'null' }),
      bad(`POST ${action}: body is a JSON string`, { method: 'POST', url, raw: '"x"' }),
      bad(`POST ${action}: malformed JSON`, { method: 'POST', url, raw: '{"' }),
      bad(`POST ${action}: __proto__ pollution attempt`, { method: 'POST', url, raw: '{"__proto__":{"polluted":true}}' }),
      bad(`POST ${action}: body larger than the 64 KiB limit`, { method: 'POST', url, raw: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }) }),
      bad(`POST ${action}: Content-Type text/plain`, { method: 'POST', url, raw: '{}', headers: { 'content-type': 'text/plain' } }),
      bad(`POST ${action}: campaign id with a space in the path`, { method: 'POST', url: () => `/v1/campaigns/a%20b/${action}` }),
      unauthorized(`POST ${action}: without a token`, { method: 'POST', url, noAuth: true }),
    ]);
  }

  run([
    bad('POST reveal: a coupon campaign has no seed', { method: 'POST', url: () => `/v1/campaigns/${probe}/reveal` }),
    bad('POST reveal: campaign id with a space in the path', { method: 'POST', url: () => '/v1/campaigns/a%20b/reveal' }),
    unauthorized('POST reveal: wrong token (the seed stays secret)', { method: 'POST', url: () => `/v1/campaigns/${lotteryProbe}/reveal`, headers: { authorization: 'Bearer wrong' } }),
    { name: 'GET proof of an unknown claim is 404 CLAIM_NOT_FOUND', method: 'GET', url: () => `/v1/claims/${uid('clm')}/proof`, status: 404, code: 'CLAIM_NOT_FOUND' },
    bad('GET proof of a coupon claim', { method: 'GET', url: () => `/v1/claims/${couponClaimId}/proof` }),
    bad('GET proof: claim id with a space', { method: 'GET', url: () => '/v1/claims/a%20b/proof' }),
    unauthorized('GET proof without a token', { method: 'GET', url: () => `/v1/claims/${couponClaimId}/proof`, noAuth: true }),
  ]);
});

test('the battery changed nothing in the store', async () => {
  const now = await snapshot();
  assert.deepEqual(now, snapshotBefore);
  const s = now as { audit: { ok: boolean }; lotteryAudit: { ok: boolean }; claims: unknown[]; seedRevealedAt: number | null };
  assert.equal(s.audit.ok, true);
  assert.equal(s.lotteryAudit.ok, true);
  assert.equal(s.seedRevealedAt, null);
  assert.equal(s.claims.length, 2);
  // the probe campaign still works: the battery did not poison caches or keys
  const ok = await t.app.inject({ method: 'POST', url: `/v1/campaigns/${probe}/claims`, headers: t.auth, payload: { userId: 'u-after' } });
  assert.equal(ok.statusCode, 201, ok.body);
  const replay = await t.app.inject({ method: 'POST', url: `/v1/campaigns/${probe}/claims`, headers: { ...t.auth, 'idempotency-key': 'probe-key' }, payload: { userId: 'u-probe' } });
  assert.equal(replay.statusCode, 201);
  assert.equal(replay.headers['idempotent-replayed'], 'true');
  // and Object.prototype was not polluted by the __proto__ / constructor attempts
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});
