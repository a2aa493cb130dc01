// LOCKS_URL=etcds://… (TLS, with or without client certificates) and etcd://user:password@… (etcd
// authentication), on throwaway single-member etcd 3.4 servers whose client URLs are https
// (certificate for 127.0.0.1 from a throwaway CA, made with openssl). Checked: locks, waits and
// fences over TLS; a member that requires a client certificate refuses a client without one; an
// untrusted CA and plain http are refused with messages that say what to check; with auth, the
// client logs in, takes a new token when the old one expired (a 2 s token TTL), and a wrong
// password or a missing user is refused at once, naming the fix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { NOOP_LOCK_METRICS } from '../../packages/lock/src/index.ts';
import { sqlDialect } from '../../src/adapters/sql/dialect.ts';
import { SqlFenceAnchor } from '../../src/adapters/sql/sql-fences.ts';
import { openEtcd } from '../../src/service/lock-backends/etcd.ts';
import type { LockBackendContext, OpenedLockBackend } from '../../src/service/lock-backends/types.ts';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd-cluster.ts';
import { makeTestCerts, openFencedDb, type TestCerts } from '../helpers/redis-topologies.ts';
import { uniquePrefix } from './redis-harness.ts';

let db: Awaited<ReturnType<typeof openFencedDb>>;
let certs: TestCerts;
let dir: string;
/** attempts per acquisition, as the provider reports them */
const attempts: number[] = [];
const ctx = (tag: string): LockBackendContext => ({
  conn: db.conn,
  anchor: new SqlFenceAnchor(db.conn.db, sqlDialect(db.conn.family), uniquePrefix(tag)),
  prefix: uniquePrefix(tag),
  metrics: { ...NOOP_LOCK_METRICS, acquired: (e) => attempts.push(e.attempts) },
  registry: new Registry(),
});
const hostPort = (c: EtcdCluster) => c.endpoints.map((e) => new URL(e).host).join(',');
const q = encodeURIComponent;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'allot-etcd-tls-'));
  certs = makeTestCerts(dir);
  db = await openFencedDb();
});
after(async () => {
  await db?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Two callers on one key: the second waits on a watch of the first's key (over the same TLS and
 * token) and gets a higher fence. A watch that failed would wake the waiter at once, again and
 * again: its acquisition would take many attempts, not a few.
 */
async function lockAndWait(opened: OpenedLockBackend, key: string): Promise<void> {
  const first = await opened.provider.acquire(key, { ttlMs: 5_000 });
  const waiting = opened.provider.acquire(key, { ttlMs: 5_000, timeoutMs: 5_000 });
  await delay(300);
  attempts.length = 0;
  await first.release();
  const second = await waiting;
  await second.release();
  assert.ok(second.fence > first.fence, `fences ${first.fence} then ${second.fence}`);
  assert.equal(attempts.length, 1);
  assert.ok(attempts[0]! <= 4, `the waiter took ${attempts[0]} attempts: its watch did not hold`);
}

describe('etcds:// with client certificates (--client-cert-auth)', () => {
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ size: 1, tls: { ...certs, clientCertAuth: true } });
  });
  after(async () => {
    await c?.destroy();
  });

  it('locks and waits over TLS with a client certificate; refuses no certificate, an untrusted CA and plain http, saying what to check', async () => {
    const base = `etcds://${hostPort(c)}?tlsCaFile=${q(certs.caFile)}`;
    const opened = await openEtcd(`${base}&tlsCertFile=${q(certs.certFile)}&tlsKeyFile=${q(certs.keyFile)}`, ctx('etcd-mtls'));
    try {
      assert.equal(opened.kind, 'etcd');
      await opened.ping();
      await lockAndWait(opened, 'mtls-k');
    } finally {
      await opened.close();
    }
    const tlsHint = /serve clients over https .* tlsCertFile and tlsKeyFile/;
    await assert.rejects(openEtcd(`${base}&connectTimeoutMs=800`, ctx('etcd-nocert')), (e: Error) => /cannot reach the etcd cluster at etcds:/.test(e.message) && tlsHint.test(e.message));
    await assert.rejects(openEtcd(`etcds://${hostPort(c)}?tlsCaFile=${q(certs.otherCaFile)}&tlsCertFile=${q(certs.certFile)}&tlsKeyFile=${q(certs.keyFile)}&connectTimeoutMs=800`, ctx('etcd-badca')), tlsHint);
    await assert.rejects(openEtcd(`etcd://${hostPort(c)}?connectTimeoutMs=800`, ctx('etcd-plain')), /etcds:\/\/ for https/);
  });
});

describe('etcd authentication (over TLS, a 2 s token TTL)', () => {
  let c: EtcdCluster;
  before(async () => {
    c = await startEtcdCluster({ size: 1, tls: certs, authTokenTtlS: 2 });
    await c.enableAuth('s3cret');
  });
  after(async () => {
    await c?.destroy();
  });

  it('logs in, locks, takes a new token once the old one expired; a wrong password or no user is refused at once', async () => {
    const opened = await openEtcd(`etcds://root:s3cret@${hostPort(c)}?tlsCaFile=${q(certs.caFile)}`, ctx('etcd-auth'));
    try {
      await lockAndWait(opened, 'auth-k');
      // idle past the token TTL (nothing held: no keepalive uses the token meanwhile)
      await delay(3_000);
      await lockAndWait(opened, 'auth-k');
    } finally {
      await opened.close();
    }
    const t0 = Date.now();
    await assert.rejects(openEtcd(`etcds://root:wrong@${hostPort(c)}?tlsCaFile=${q(certs.caFile)}&connectTimeoutMs=5000`, ctx('etcd-badpw')), (e: Error) => /cannot log in to the etcd cluster at etcds:\/\/root:\*\*\*@/.test(e.message) && /check the user and password/.test(e.message) && !e.message.includes('wrong'));
    assert.ok(Date.now() - t0 < 3_000, 'a wrong password is not retried until the connect timeout');
    await assert.rejects(openEtcd(`etcds://${hostPort(c)}?tlsCaFile=${q(certs.caFile)}`, ctx('etcd-nouser')), /the cluster has authentication enabled: put the user and password in the URL/);
  });
});
