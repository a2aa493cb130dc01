// The error registry, docs/errors.md and the HTTP statuses agree.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { AllotError, ERRORS, errorBody, type ErrorCode } from '../../src/core/errors.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const rows = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]));

test('every registry code is documented with its status, and nothing else is', () => {
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERRORS).sort());
  for (const [code, e] of Object.entries(ERRORS)) assert.equal(rows.get(code), e.status, `${code} status in docs/errors.md`);
});

test('codes are UPPER_SNAKE and statuses are 4xx/5xx', () => {
  for (const [code, e] of Object.entries(ERRORS)) {
    assert.match(code, /^[A-Z][A-Z_]*[A-Z]$/);
    assert.ok(e.status >= 400 && e.status < 600);
  }
});

test('AllotError takes its status from the registry; errorBody has the API.md shape', () => {
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const e = new AllotError(code, undefined, { id: 'x' });
    assert.equal(e.status, ERRORS[code].status);
    const body = errorBody(code, e.message, e.details);
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
    assert.equal(body.error.id, 'x');
  }
});

test('details cannot overwrite code or message', () => {
  const body = errorBody('SOLD_OUT', undefined, { code: 'HACK', message: 'x' });
  assert.equal(body.error.code, 'SOLD_OUT');
  assert.equal(body.error.message, ERRORS.SOLD_OUT.message);
});
