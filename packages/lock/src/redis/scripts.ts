// Loads the Lua scripts: inlines `--@include name` from lua/includes/, stamps each with the
// package version (so two releases sharing a Redis never run each other's scripts), and runs
// them by EVALSHA with a fallback to SCRIPT LOAD on NOSCRIPT.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isNoScriptError, type RedisArg, type RedisClient } from './client.ts';

const LUA_DIR = fileURLToPath(new URL('./lua/', import.meta.url));
const PACKAGE_VERSION = (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;

export interface LockScript {
  /** "<verbNoun>:<version>" */
  readonly name: string;
  readonly numKeys: number;
  readonly source: string;
  readonly sha: string;
}

export type ScriptName = 'tryLock' | 'acquireLock' | 'extendLock' | 'releaseLock' | 'refreshWaiter' | 'leaveQueue' | 'installEpoch';

function inline(source: string, seen: Set<string>): string {
  return source.replace(/^--@include (\w+)\s*$/gm, (_, name: string) => {
    if (seen.has(name)) return '';
    seen.add(name);
    return inline(readFileSync(`${LUA_DIR}includes/${name}.lua`, 'utf8'), seen);
  });
}

/** Inlines `--@include name` lines from lua/includes/ (each include once). */
export function inlineLuaIncludes(source: string): string {
  return inline(source, new Set());
}

function loadAll(): Map<ScriptName, LockScript> {
  const out = new Map<ScriptName, LockScript>();
  for (const file of readdirSync(LUA_DIR)) {
    const m = /^(\w+)-(\d+)\.lua$/.exec(file);
    if (!m) continue;
    const verb = m[1] as ScriptName;
    const name = `${verb}:${PACKAGE_VERSION}`;
    const source = `-- allot ${name}\n${inline(readFileSync(LUA_DIR + file, 'utf8'), new Set())}`;
    out.set(verb, { name, numKeys: Number(m[2]), source, sha: createHash('sha1').update(source).digest('hex') });
  }
  return out;
}

let cache: Map<ScriptName, LockScript> | undefined;

export function lockScripts(): Map<ScriptName, LockScript> {
  cache ??= loadAll();
  return cache;
}

export function lockScript(name: ScriptName): LockScript {
  const s = lockScripts().get(name);
  if (!s) throw new Error(`lock script ${name} missing from ${LUA_DIR}`);
  return s;
}

export const LOCK_SCRIPTS_VERSION = PACKAGE_VERSION;

/**
 * EVALSHA, falling back to SCRIPT LOAD + EVALSHA (and EVAL if loading is refused) on NOSCRIPT.
 * `wrap`, if given, maps every error (the first and the fallback's) in the same handler.
 */
export function runScript(client: RedisClient, script: LockScript, keys: readonly string[], args: readonly RedisArg[], wrap?: (error: unknown) => unknown): Promise<unknown> {
  if (keys.length !== script.numKeys) return Promise.reject(new Error(`${script.name} takes ${script.numKeys} keys, got ${keys.length}`));
  // No async/await and one handler: this is the hot path of every lock operation.
  return client.evalsha(script.sha, keys, args).catch((error: unknown) => {
    if (!isNoScriptError(error)) throw wrap ? wrap(error) : error;
    const retry = client.scriptLoad(script.source).then(
      () => client.evalsha(script.sha, keys, args),
      () => client.eval(script.source, keys, args),
    );
    return wrap
      ? retry.catch((e: unknown) => {
          throw wrap(e);
        })
      : retry;
  });
}
