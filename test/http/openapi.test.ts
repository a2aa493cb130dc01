// The OpenAPI document (GET /openapi.json) as something to generate clients from: a third-party
// linter (Redocly, recommended rules) finds nothing; it names its schemas and operations, lists
// the error codes of each status (from ERRORS), the Idempotency-Key, Idempotent-Replayed,
// Retry-After and X-Request-Id headers, typed query parameters and the operations endpoints;
// a client generated from it (openapi-typescript + openapi-fetch) type-checks the README
// walk-through, which then runs against a listening service with every answer checked against
// the document. One app (in-memory PGlite) for the file.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ERRORS, type ErrorCode } from '../../src/core/errors.ts';
import { makeApp, uid, type TestApp } from '../helpers/app.ts';
import { SCHEMA_FILE, generateTypes } from './openapi-client/generate.ts';
import { walkThrough } from './openapi-client/walkthrough.ts';

type Json = Record<string, unknown>;
interface Operation {
  operationId?: string;
  tags?: string[];
  parameters?: Array<{ in: string; name: string; required?: boolean; schema: Json }>;
  responses: Record<string, { description: string; headers?: Record<string, { schema: Json }>; content?: Record<string, { schema: Json }> }>;
  security?: unknown[];
}
interface Doc {
  openapi: string;
  servers?: Array<{ url: string }>;
  tags?: Array<{ name: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Json> };
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT_DIR = fileURLToPath(new URL('./openapi-client/', import.meta.url));

// The operations of API.md and their stable operationIds: renaming one breaks generated clients.
const OPERATIONS: Array<[string, string, string]> = [
  ['get', '/healthz', 'getHealth'], ['get', '/readyz', 'getReadiness'], ['get', '/metrics', 'getMetrics'],
  ['post', '/v1/campaigns', 'createCampaign'], ['get', '/v1/campaigns', 'listCampaigns'], ['get', '/v1/campaigns/{id}', 'getCampaign'],
  ['get', '/v1/campaigns/{id}/audit', 'auditCampaign'], ['post', '/v1/campaigns/{id}/claims', 'createClaim'], ['get', '/v1/campaigns/{id}/claims', 'listClaims'],
  ['get', '/v1/claims/{claimId}', 'getClaim'], ['post', '/v1/campaigns/{id}/stock', 'addStock'], ['post', '/v1/campaigns/{id}/pause', 'pauseCampaign'],
  ['post', '/v1/campaigns/{id}/resume', 'resumeCampaign'], ['post', '/v1/campaigns/{id}/reveal', 'revealSeed'], ['get', '/v1/claims/{claimId}/proof', 'getDrawProof'],
  ['post', '/v1/fundings', 'createFunding'], ['get', '/v1/accounts/{userId}/balances', 'getBalances'], ['post', '/v1/withdrawals', 'createWithdrawal'],
  ['post', '/v1/transfers', 'createTransfer'], ['get', '/v1/transfers/{orderId}', 'getTransfer'], ['get', '/v1/transfers', 'listTransfers'],
  ['post', '/v1/transfers/{orderId}/resolve', 'resolveTransfer'], ['get', '/v1/ledger/audit', 'auditLedger'],
];

const NAMED_SCHEMAS = [
  'Error', 'ErrorCode', 'Problem', 'Campaign', 'CampaignPrize', 'CampaignPage', 'CreateCampaignRequest', 'PrizeInput', 'Claim', 'ClaimPage', 'ClaimRequest',
  'AuditReport', 'AddStockRequest', 'SeedReveal', 'DrawProof', 'Amount', 'AmountInput', 'Funding', 'FundingRequest', 'Withdrawal', 'WithdrawalRequest',
  'Transfer', 'TransferRequest', 'TransferState', 'TransferPage', 'ResolveRequest', 'Balance', 'LedgerAuditReport', 'Health', 'Readiness',
];

let t: TestApp;
let baseUrl: string;
let doc: Doc;
let rawDoc: Json;
let tmp: string;

before(async () => {
  t = await makeApp();
  baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  // Through the app, not a socket: a kept-alive connection left idle while the type-check
  // blocks this process could be reset under the walk-through's first request.
  const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
  assert.equal(res.statusCode, 200);
  rawDoc = deepFreeze(res.json() as Json);
  doc = rawDoc as unknown as Doc;
  tmp = mkdtempSync(join(tmpdir(), 'allot-openapi-'));
});

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
after(async () => {
  await t?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

function operations(): Array<{ method: string; path: string; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ method, path, op })));
}

function op(method: string, path: string): Operation {
  const found = doc.paths[path]?.[method];
  assert.ok(found, `${method.toUpperCase()} ${path} is not in the document`);
  return found;
}

/** The schema a `$ref` names (one level). */
function deref(schema: Json): Json {
  const ref = schema.$ref;
  if (typeof ref !== 'string') return schema;
  const name = ref.replace('#/components/schemas/', '');
  const target = doc.components.schemas[name];
  assert.ok(target, `${ref} does not resolve`);
  return target;
}

function errorCodes(response: Operation['responses'][string]): string[] {
  const schema = deref(response.content?.['application/json']?.schema ?? {});
  const code = deref(((deref((schema.properties as Json).error as Json).properties as Json).code as Json));
  return [...(code.enum as string[])];
}

describe('the OpenAPI document', () => {
  test('Redocly lint (recommended rules, redocly.yaml) reports no error and no warning', async () => {
    const file = join(tmp, 'openapi.json');
    writeFileSync(file, JSON.stringify(rawDoc, null, 2));
    const cli = join(ROOT, 'node_modules/@redocly/cli/bin/cli.js');
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [cli, 'lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format=json'], {
        cwd: tmp,
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
        maxBuffer: 16 * 1024 * 1024,
        timeout: 60_000,
      }, (err, stdout, stderr) => {
        // Exit code 1 means problems were found: the JSON report says which.
        if (stdout.trim().startsWith('{')) resolve(stdout);
        else reject(new Error(`redocly lint failed: ${err?.message ?? ''}\n${stderr}`));
      });
    });
    const report = JSON.parse(out) as { totals: { errors: number; warnings: number }; problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }> };
    const list = report.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`).join('\n');
    assert.equal(report.totals.errors, 0, list);
    assert.equal(report.totals.warnings, 0, list);
  });

  test('OpenAPI 3.0, a relative server, tags declared, named component schemas (no def-N)', () => {
    assert.equal(doc.openapi, '3.0.3');
    assert.deepEqual(doc.servers?.map((s) => s.url), ['/']);
    const tags = new Set(doc.tags?.map((tg) => tg.name));
    for (const { method, path, op: o } of operations()) {
      assert.ok(o.tags?.length, `${method} ${path} has no tag`);
      for (const tag of o.tags ?? []) assert.ok(tags.has(tag), `${method} ${path}: tag ${tag} is not declared in tags`);
    }
    const names = Object.keys(doc.components.schemas);
    for (const name of NAMED_SCHEMAS) assert.ok(names.includes(name), `components.schemas.${name} missing (has ${names.join(', ')})`);
    assert.deepEqual(names.filter((n) => /^def-\d+$/.test(n)), []);
    // The request bodies and the success bodies of the resources are those named schemas.
    assert.deepEqual(op('post', '/v1/campaigns').responses['201']?.content?.['application/json']?.schema, { $ref: '#/components/schemas/Campaign' });
    assert.deepEqual((op('post', '/v1/withdrawals') as unknown as { requestBody: { content: Record<string, { schema: Json }> } }).requestBody.content['application/json']?.schema, { $ref: '#/components/schemas/WithdrawalRequest' });
  });

  test('every operation has its stable camelCase operationId', () => {
    const found = operations().map(({ method, path, op: o }) => [method, path, o.operationId]);
    assert.deepEqual(new Set(found.map((f) => JSON.stringify(f))), new Set(OPERATIONS.map((f) => JSON.stringify(f))));
    for (const [, , id] of OPERATIONS) assert.match(id, /^[a-z][A-Za-z0-9]*$/);
  });

  test('each error status lists its codes, derived from ERRORS; every /v1 operation has 400, 401, 500 and 503', () => {
    const all = Object.keys(ERRORS) as ErrorCode[];
    assert.deepEqual(doc.components.schemas.ErrorCode?.enum, all);
    for (const code of all) assert.ok(String(doc.components.schemas.ErrorCode?.description).includes(`\`${code}\` (${ERRORS[code].status})`), code);
    for (const { method, path, op: o } of operations()) {
      const where = `${method.toUpperCase()} ${path}`;
      for (const [status, response] of Object.entries(o.responses)) {
        assert.ok(response.headers?.['X-Request-Id'], `${where} ${status}: no X-Request-Id header`);
        if (status === 'default') {
          assert.deepEqual(response.content?.['application/json']?.schema, { $ref: '#/components/schemas/Error' });
          continue;
        }
        if (Number(status) < 400) continue;
        const codes = errorCodes(response);
        assert.ok(codes.length > 0, `${where} ${status}: no code`);
        for (const code of codes) {
          assert.equal(ERRORS[code as ErrorCode]?.status, Number(status), `${where} ${status} lists ${code}`);
          assert.ok(response.description.includes(`\`${code}\`: ${ERRORS[code as ErrorCode].message}`), `${where} ${status}: ${code} not described`);
        }
        if (status === '503') assert.ok(response.headers?.['Retry-After'], `${where} 503: no Retry-After`);
        if (status === '401') assert.ok(response.headers?.['WWW-Authenticate'], `${where} 401: no WWW-Authenticate`);
      }
      assert.ok(o.responses.default, `${where}: no default response`);
      if (path.startsWith('/v1/')) {
        for (const status of ['400', '401', '500', '503']) assert.ok(o.responses[status], `${where}: no ${status}`);
        assert.ok(errorCodes(o.responses['400']!).includes('VALIDATION_FAILED'));
      }
    }
    assert.deepEqual(errorCodes(op('post', '/v1/campaigns/{id}/claims').responses['409']!).sort(), ['CAMPAIGN_NOT_ACTIVE', 'IDEMPOTENCY_IN_PROGRESS', 'SOLD_OUT', 'USER_LIMIT_REACHED']);
    assert.deepEqual(errorCodes(op('post', '/v1/campaigns/{id}/claims').responses['422']!), ['IDEMPOTENCY_KEY_REUSED']);
    assert.deepEqual(errorCodes(op('post', '/v1/withdrawals').responses['400']!), ['VALIDATION_FAILED', 'IDEMPOTENCY_KEY_REQUIRED']);
    assert.deepEqual(errorCodes(op('get', '/v1/transfers/{orderId}').responses['404']!), ['ORDER_NOT_FOUND']);
  });

  test('Idempotency-Key (optional on claims, required on withdrawals) and Idempotent-Replayed where answers replay', () => {
    const key = (o: Operation) => o.parameters?.find((p) => p.in === 'header' && p.name === 'Idempotency-Key');
    assert.equal(key(op('post', '/v1/campaigns/{id}/claims'))?.required, false);
    assert.equal(key(op('post', '/v1/withdrawals'))?.required, true);
    assert.equal(key(op('post', '/v1/withdrawals'))?.schema.pattern, '^[\\x20-\\x7E]{1,255}$');
    assert.equal(operations().filter(({ op: o }) => key(o)).length, 2);
    const replayable: Array<[string, string, string[]]> = [
      ['post', '/v1/campaigns/{id}/claims', ['201', '409']], ['post', '/v1/withdrawals', ['201', '404', '409']], ['post', '/v1/fundings', ['200']],
      ['post', '/v1/transfers', ['200']], ['post', '/v1/transfers/{orderId}/resolve', ['200']],
    ];
    for (const { method, path, op: o } of operations()) {
      const expected = replayable.find(([m, p]) => m === method && p === path)?.[2] ?? [];
      const found = Object.entries(o.responses).filter(([, r]) => r.headers?.['Idempotent-Replayed']).map(([s]) => s);
      assert.deepEqual(found, expected, `${method} ${path}`);
    }
  });

  test('query parameters are typed: limit an integer 1-1000, cursor a string, state the TransferState enum', () => {
    for (const path of ['/v1/campaigns', '/v1/campaigns/{id}/claims', '/v1/transfers']) {
      const params = op('get', path).parameters ?? [];
      assert.deepEqual(params.find((p) => p.name === 'limit')?.schema, { minimum: 1, maximum: 1000, type: 'integer' }, path);
      assert.equal(params.find((p) => p.name === 'cursor')?.schema.type, 'string', path);
    }
    const state = op('get', '/v1/transfers').parameters?.find((p) => p.name === 'state');
    assert.deepEqual(state?.schema, { $ref: '#/components/schemas/TransferState' });
    assert.deepEqual(doc.components.schemas.TransferState?.enum, ['received', 'executing', 'succeeded', 'failed', 'unknown']);
  });

  test('/healthz, /readyz (with its 503) and /metrics (text/plain) have response schemas', () => {
    assert.deepEqual(op('get', '/healthz').responses['200']?.content?.['application/json']?.schema, { $ref: '#/components/schemas/Health' });
    const readyz = op('get', '/readyz');
    assert.deepEqual(readyz.responses['200']?.content?.['application/json']?.schema, { $ref: '#/components/schemas/Readiness' });
    assert.deepEqual(errorCodes(readyz.responses['503']!), ['UNAVAILABLE']);
    assert.ok(readyz.responses['503']?.headers?.['Retry-After']);
    assert.deepEqual(op('get', '/metrics').responses['200']?.content, { 'text/plain': { schema: { type: 'string' } } });
    for (const path of ['/healthz', '/readyz', '/metrics']) assert.deepEqual(op('get', path).security, [], path);
  });
});

describe('a client generated from the document', () => {
  test('test/http/openapi-client/schema.ts is what openapi-typescript generates from this document', async () => {
    const fresh = await generateTypes(structuredClone(rawDoc));
    assert.ok(fresh.includes('export interface paths'));
    assert.ok(readFileSync(SCHEMA_FILE, 'utf8') === fresh, 'schema.ts is stale: the document changed. Regenerate it: node --import tsx test/http/openapi-client/generate.ts');
  });

  test('the walk-through type-checks with openapi-fetch; a withdrawal without its key, an unknown path or a string limit do not', () => {
    const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(String(d.messageText)) });
    assert.ok(config);
    // A second program file, inside openapi-client/ so that its imports resolve: each line must fail.
    const wrong = join(CLIENT_DIR, 'wrong.ts');
    const wrongText = [
      "import createClient from 'openapi-fetch';",
      "import type { paths } from './schema.ts';",
      'const client = createClient<paths>({});',
      "void client.POST('/v1/withdrawals', { body: { userId: 'u', asset: 'CNY', amount: 1 } });",
      "void client.GET('/v1/campaigns/{id}/nothing', { params: { path: { id: 'x' } } });",
      "void client.GET('/v1/campaigns', { params: { query: { limit: '10' } } });",
      "void client.POST('/v1/campaigns', { body: { name: 'x', stock: '1' } });",
      '',
    ].join('\n');
    const host = ts.createCompilerHost(config.options);
    const readFile = host.readFile.bind(host);
    const getSourceFile = host.getSourceFile.bind(host);
    host.readFile = (name) => (name === wrong ? wrongText : readFile(name));
    host.fileExists = (name) => name === wrong || ts.sys.fileExists(name);
    host.getSourceFile = (name, lang, ...rest) => (name === wrong ? ts.createSourceFile(name, wrongText, lang) : getSourceFile(name, lang, ...rest));
    const program = ts.createProgram({ rootNames: [join(CLIENT_DIR, 'walkthrough.ts'), wrong], options: { ...config.options, noEmit: true }, host });
    const diagnostics = ts.getPreEmitDiagnostics(program);
    const text = (d: ts.Diagnostic) => `${d.file?.fileName ?? ''}:${d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : ''} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    const inWalkthrough = diagnostics.filter((d) => d.file?.fileName !== wrong);
    assert.deepEqual(inWalkthrough.map(text), []);
    const failingLines = new Set(diagnostics.filter((d) => d.file?.fileName === wrong && d.start !== undefined).map((d) => d.file!.getLineAndCharacterOfPosition(d.start!).line + 1));
    assert.deepEqual([...failingLines].sort(), [4, 5, 6, 7], diagnostics.map(text).join('\n'));
  });

  test('the README walk-through runs against a listening service, every answer as the document says', async () => {
    const Ajv = ajvClass();
    const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false });
    ajv.addSchema(structuredClone(rawDoc), 'openapi.json');
    const exchanges: Array<{ method: string; url: URL; status: number; headers: Headers; body: string }> = [];
    const recording = async (request: Request): Promise<Response> => {
      const res = await fetch(request);
      exchanges.push({ method: request.method.toLowerCase(), url: new URL(request.url), status: res.status, headers: res.headers, body: await res.clone().text() });
      return res;
    };
    await walkThrough({ baseUrl, token: t.token, runId: uid('w'), fetch: recording });

    const templates = Object.keys(doc.paths).map((p) => ({ p, re: new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`) }));
    const called = new Set<string>();
    for (const x of exchanges) {
      const where = `${x.method.toUpperCase()} ${x.url.pathname} -> ${x.status}`;
      const template = templates.find(({ re }) => re.test(x.url.pathname))?.p;
      assert.ok(template, `${where}: no path of the document matches`);
      const o = op(x.method, template);
      called.add(o.operationId ?? '');
      // Each status met here is listed by the operation itself (not only covered by `default`).
      const status = String(x.status);
      const response = o.responses[status];
      assert.ok(response, `${where}: status not documented (${Object.keys(o.responses).join(', ')})`);
      assert.match(x.headers.get('x-request-id') ?? '', /^[A-Za-z0-9_.:-]{1,128}$/, `${where}: X-Request-Id`);
      if (x.headers.get('idempotent-replayed') !== null) assert.ok(response.headers?.['Idempotent-Replayed'], `${where}: Idempotent-Replayed not documented`);
      const media = Object.keys(response.content ?? {})[0] ?? '';
      assert.ok((x.headers.get('content-type') ?? '').startsWith(media), `${where}: content-type ${x.headers.get('content-type')}, documented ${media}`);
      if (media !== 'application/json') continue;
      const pointer = ['paths', template, x.method, 'responses', status, 'content', media, 'schema'].map((s) => s.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
      const validate = ajv.getSchema(`openapi.json#/${pointer}`);
      assert.ok(validate, `${where}: no schema at ${pointer}`);
      assert.ok(validate(JSON.parse(x.body)), `${where}: ${x.body}\ndoes not match the document: ${JSON.stringify(validate.errors)}`);
    }
    // The walk-through calls every operation of the document.
    assert.deepEqual([...called].sort(), OPERATIONS.map(([, , id]) => id).sort());
  });
});

interface AjvInstance {
  addSchema(schema: object, key: string): void;
  getSchema(ref: string): (((data: unknown) => boolean) & { errors?: unknown }) | undefined;
}

/** Ajv 8, the validator fastify itself compiles route schemas with (through @fastify/ajv-compiler). */
function ajvClass(): new (opts: object) => AjvInstance {
  const fromCompiler = createRequire(createRequire(import.meta.url).resolve('@fastify/ajv-compiler'));
  const mod = fromCompiler('ajv') as { default: new (opts: object) => AjvInstance; version?: string };
  assert.match(String(JSON.parse(readFileSync(join(dirname(fromCompiler.resolve('ajv')), '../package.json'), 'utf8')).version), /^8\./);
  return mod.default;
}
