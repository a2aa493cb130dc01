// Redlock: one acquisition's operations on one node run in order (RedlockBackend #inOrder). The
// attempts of an acquisition share its owner id, and a failed attempt gives back what it won in
// the background. Without the order, that give-back could reach a node AFTER the next attempt of
// the same acquisition had won it there (its script sent again after NOSCRIPT, say), delete that
// grant, and let a second caller take a majority while the first went on holding the lock. Found
// once by the loaded contract test; here it is made certain: node 0 forgot the release script and
// loading it takes 600 ms, so the first attempt's give-back lands late on purpose.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { MemoryFenceAnchor, createRedlockProvider, type LockProvider, type RedisClient } from '../../packages/lock/src/index.ts';
import { lockScript } from '../../packages/lock/src/redis/scripts.ts';
import { startRedlockNodes, type RedlockNodes } from '../helpers/redlock-servers.ts';
import { uniquePrefix } from './redis-harness.ts';

describe('redlock: one acquisition, in order per node', () => {
  let nodes: RedlockNodes;
  const providers: LockProvider[] = [];
  before(async () => {
    nodes = await startRedlockNodes(3);
  });
  after(async () => {
    await Promise.all(providers.map((p) => p.close()));
    await nodes?.close();
  });

  it("a failed attempt's late give-back never deletes the next attempt's grant: no second holder", async () => {
    const prefix = uniquePrefix('rl-order');
    const anchor = new MemoryFenceAnchor();
    const releaseSource = lockScript('releaseLock').source;
    let slowLoads = 0;
    const c0 = nodes.clients[0]!;
    // node 0 as A's client sees it: loading the release script takes 600 ms
    const slow0: RedisClient = {
      ...c0,
      kind: c0.kind,
      scriptLoad: (source) => {
        if (source !== releaseSource) return c0.scriptLoad(source);
        slowLoads++;
        return delay(600).then(() => c0.scriptLoad(source));
      },
    };
    const opts = { nodeNames: nodes.names, fenceAnchor: anchor, prefix, nodeTimeoutMs: 2_000 };
    const a = createRedlockProvider({ ...opts, clients: [slow0, nodes.clients[1]!, nodes.clients[2]!] });
    const c = createRedlockProvider({ ...opts, clients: nodes.clients });
    providers.push(a, c);
    // epochs installed and scripts loaded everywhere; then node 0 forgets its scripts
    await (await a.acquire('warm')).release();
    await (await c.acquire('warm')).release();
    await nodes.redis[0]!.script('FLUSH');
    const lockKey = `${prefix}l:k`;
    // node 1 held by B for 100 ms more, node 2 held by D until the test frees it
    await nodes.redis[1]!.set(lockKey, 'B', 'PX', 100);
    await nodes.redis[2]!.set(lockKey, 'D', 'PX', 60_000);

    // A's first attempt wins node 0 only and gives it back (release: NOSCRIPT, a 600 ms load);
    // its next attempts, once B's hold ran out, win nodes 0 and 1: a majority
    const lease = await a.acquire('k', { ttlMs: 10_000, timeoutMs: 8_000 });
    assert.ok(slowLoads >= 1, 'the give-back went through the slow script load');
    // every give-back has landed by now
    await delay(900);
    const node0 = await nodes.redis[0]!.get(lockKey);
    // D goes: nodes 0 and 2 would be a majority for C if node 0 had been freed under A
    await nodes.redis[2]!.del(lockKey);
    const second = await c.tryAcquire('k', { ttlMs: 10_000 });
    assert.equal(second, null, `a second holder while A holds the lock (node 0 held by ${node0})`);
    assert.equal(node0, lease.ownerId, "node 0 still A's");
    await lease.release();
  });

  it("a node's late grant to a caller that won a majority stays its holding when it leaves that node's queue", async () => {
    // A fair caller that wins nodes 0 and 1 leaves the queue of node 2, which answers late (its
    // attempts take 300 ms) and grants it then. Freeing that grant (a give-back meant for a
    // hand-off) let node 2's next fair waiter win it there and leave node 2's queue, so fair
    // waiters were served out of order (the contract's FIFO test, in CI and under load).
    const prefix = uniquePrefix('rl-late');
    const c2 = nodes.clients[2]!;
    const slow2: RedisClient = { ...c2, kind: c2.kind, evalsha: (sha, keys, args) => (sha === lockScript('acquireLock').sha ? delay(300).then(() => c2.evalsha(sha, keys, args)) : c2.evalsha(sha, keys, args)) };
    const a = createRedlockProvider({ nodeNames: nodes.names, fenceAnchor: new MemoryFenceAnchor(), prefix, nodeTimeoutMs: 2_000, clients: [nodes.clients[0]!, nodes.clients[1]!, slow2] });
    providers.push(a);
    await (await a.acquire('warm', { fair: true })).release();
    const lease = await a.acquire('k', { ttlMs: 10_000, fair: true });
    await delay(700);
    assert.equal(await nodes.redis[2]!.get(`${prefix}l:k`), lease.ownerId, "node 2's late grant kept");
    await lease.release();
    assert.equal(await nodes.redis[2]!.get(`${prefix}l:k`), null);
  });
});
