// Pure domain pieces: canonical JSON fingerprints, UTC days, campaign rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCampaign, isActive } from '../../src/core/campaign.ts';
import { utcDay } from '../../src/core/claim.ts';
import { isAllotError } from '../../src/core/errors.ts';
import { canonicalJson, fingerprint } from '../../src/core/idempotency.ts';

test('canonical JSON sorts keys at every depth and drops undefined', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null }, u: undefined }), '{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  assert.equal(fingerprint('claim', { userId: 'u', campaignId: 'c' }), fingerprint('claim', { campaignId: 'c', userId: 'u' }));
  assert.notEqual(fingerprint('claim', { campaignId: 'c', userId: 'u' }), fingerprint('claim', { campaignId: 'c', userId: 'v' }));
  assert.notEqual(fingerprint('claim', { a: 1 }), fingerprint('other', { a: 1 }));
});

test('utcDay buckets by the UTC calendar day', () => {
  assert.equal(utcDay(Date.parse('2026-11-22T23:59:59.999Z')), '2026-11-22');
  assert.equal(utcDay(Date.parse('2026-11-23T00:00:00.000Z')), '2026-11-23');
  assert.equal(utcDay(Date.parse('2026-11-23T01:00:00+02:00')), '2026-11-22');
});

test('campaign window: startsAt inclusive, endsAt exclusive', () => {
  const c = { startsAt: 1000, endsAt: 2000, paused: false };
  assert.equal(isActive(c, 999), false);
  assert.equal(isActive(c, 1000), true);
  assert.equal(isActive(c, 1999), true);
  assert.equal(isActive(c, 2000), false);
  assert.equal(isActive({ startsAt: null, endsAt: null, paused: false }, 0), true);
  assert.equal(isActive({ startsAt: null, endsAt: null, paused: true }, 0), false, 'a paused campaign is not active');
});

test('buildCampaign applies defaults and refuses what a schema cannot catch', () => {
  const c = buildCampaign({ kind: 'coupon', name: 'n', stock: 5 }, 'id', 'conditional', 42);
  assert.equal(c.perUserLimit, 1);
  assert.equal(c.perUserDailyLimit, null);
  assert.equal(c.issued, 0);
  assert.equal(c.createdAt, 42);
  const bad = [
    { kind: 'coupon' as const, name: 'n' },
    { kind: 'lottery' as const, name: 'n', prizes: [] },
    { kind: 'lottery' as const, name: 'n', stock: 3, prizes: [{ id: 'p', name: 'P', stock: 1, weight: 1 }] },
    { kind: 'coupon' as const, name: 'n', stock: 1, startsAt: '2026-01-02T00:00:00Z', endsAt: '2026-01-01T00:00:00Z' },
    { kind: 'coupon' as const, name: 'n', stock: 1, startsAt: '2026-01-02' },
    { kind: 'coupon' as const, name: 'n', stock: 1, endsAt: '2026-13-45T00:00:00Z' },
  ];
  for (const input of bad) {
    assert.throws(() => buildCampaign(input, 'id', 'conditional', 0, '00'), (e) => isAllotError(e, 'VALIDATION_FAILED'), JSON.stringify(input));
  }
});
