// Loads the `redis-atomic` Lua scripts as the lock library does (packages/lock/src/redis/scripts.ts):
// one file per atomic operation named <verbNoun>-<numKeys>.lua, stamped "<verbNoun>:<allot version>"
// so two releases sharing a Redis never run each other's scripts, run by EVALSHA with a fallback to
// SCRIPT LOAD (then EVAL) on NOSCRIPT.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RedisArg, RedisClient } from '@allot/lock';

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
// src/strategies/redis-atomic/ and dist/strategies/redis-atomic/ are both three levels below the package root.
const VERSION = (JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;

export interface AtomicScript {
  readonly name: string;
  readonly numKeys: number;
  readonly source: string;
  readonly sha: string;
}

function load(file: string): AtomicScript {
  const m = /^(\w+)-(\d+)\.lua$/.exec(file);
  if (!m) throw new Error(`redis-atomic: bad script file name ${file}`);
  const name = `${m[1]!}:${VERSION}`;
  const source = `-- allot ${name}\n${readFileSync(LUA_DIR + file, 'utf8')}`;
  return { name, numKeys: Number(m[2]), source, sha: createHash('sha1').update(source).digest('hex') };
}

export const CLAIM_UNITS: AtomicScript = load('claimUnits-4.lua');
export const UNDO_CLAIM: AtomicScript = load('undoClaim-3.lua');
export const CLAIM_FAST: AtomicScript = load('claimFast-5.lua');
export const RESTORE_COUNTS: AtomicScript = load('restoreCounts-1.lua');
export const INSTALL_BLOCK: AtomicScript = load('installBlock-3.lua');

function isNoScript(error: unknown): boolean {
  return error instanceof Error && /NOSCRIPT/.test(error.message);
}

export async function runAtomicScript(client: RedisClient, script: AtomicScript, keys: readonly string[], args: readonly RedisArg[]): Promise<unknown> {
  if (keys.length !== script.numKeys) throw new Error(`${script.name} takes ${script.numKeys} keys, got ${keys.length}`);
  try {
    return await client.evalsha(script.sha, keys, args);
  } catch (error) {
    if (!isNoScript(error)) throw error;
    // Not loaded (a restart, SCRIPT FLUSH, a failover): load it, or send it whole if loading is refused.
    const loaded = await client.scriptLoad(script.source).then(() => true, () => false);
    return loaded ? client.evalsha(script.sha, keys, args) : client.eval(script.source, keys, args);
  }
}
