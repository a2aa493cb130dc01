// Loads the Redlock-only Lua scripts (lua/<verbNoun>-<numKeys>.lua), stamped "redlock:<verb>:<version>"
// like the single-Redis scripts, and run through the same EVALSHA / NOSCRIPT fallback (runScript).
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LOCK_SCRIPTS_VERSION, inlineLuaIncludes, type LockScript } from '../redis/scripts.ts';

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));

export type RedlockScriptName = 'raiseFence';

let cache: Map<string, LockScript> | undefined;

function loadAll(): Map<string, LockScript> {
  const out = new Map<string, LockScript>();
  for (const file of readdirSync(LUA_DIR)) {
    const m = /^(\w+)-(\d+)\.lua$/.exec(file);
    if (!m) continue;
    const name = `redlock:${m[1]}:${LOCK_SCRIPTS_VERSION}`;
    const source = `-- allot ${name}\n${inlineLuaIncludes(readFileSync(LUA_DIR + file, 'utf8'))}`;
    out.set(m[1]!, { name, numKeys: Number(m[2]), source, sha: createHash('sha1').update(source).digest('hex') });
  }
  return out;
}

export function redlockScript(name: RedlockScriptName): LockScript {
  cache ??= loadAll();
  const s = cache.get(name);
  if (!s) throw new Error(`Redlock script ${name} missing from ${LUA_DIR}`);
  return s;
}
