// Parses the multi-host lock URLs (redis-sentinel://h1:p1,h2:p2/…, redis-cluster://h1:p1,…), which
// WHATWG URL refuses (a comma list is not a host), and masks their password for display.
import { readFile } from 'node:fs/promises';

export interface MultiHostUrl {
  scheme: string;
  username: string | undefined;
  password: string | undefined;
  hosts: { host: string; port: number }[];
  /** path segments, decoded, without empty ones */
  path: string[];
  params: URLSearchParams;
}

const SHAPE = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i;

export function parseMultiHostUrl(raw: string, defaultPort: number): MultiHostUrl {
  const m = SHAPE.exec(raw.trim());
  if (!m) throw new Error(`not a URL: ${maskMultiHostUrl(raw)}`);
  const [, scheme, auth, hostList, pathPart, query] = m;
  let username: string | undefined;
  let password: string | undefined;
  if (auth !== undefined) {
    const colon = auth.indexOf(':');
    username = decodeURIComponent(colon < 0 ? auth : auth.slice(0, colon)) || undefined;
    password = colon < 0 ? undefined : decodeURIComponent(auth.slice(colon + 1)) || undefined;
  }
  const hosts = hostList!.split(',').map((h) => {
    const one = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/i.exec(h.trim());
    if (!one) throw new Error(`bad host "${h}" in ${maskMultiHostUrl(raw)}: expected host:port`);
    const port = one[3] === undefined ? defaultPort : Number(one[3]);
    if (port < 1 || port > 65535) throw new Error(`bad port in "${h}" in ${maskMultiHostUrl(raw)}`);
    return { host: one[1] ?? one[2]!, port };
  });
  if (hosts.length === 0 || (hosts.length === 1 && hostList === '')) throw new Error(`no host in ${maskMultiHostUrl(raw)}`);
  return {
    scheme: scheme!.toLowerCase(),
    username,
    password,
    hosts,
    path: pathPart!.split('/').filter(Boolean).map((s) => decodeURIComponent(s)),
    params: new URLSearchParams(query ?? ''),
  };
}

/** The URL with its password (and any sentinelPassword parameter) replaced by ***. */
export function maskMultiHostUrl(raw: string): string {
  return raw.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/?#]*:)[^@/?#]*@/i, '$1***@').replace(/([?&](?:sentinelPassword|password)=)[^&#]*/gi, '$1***');
}

/** ?connectTimeoutMs=: how long opening may wait for a first connection; default 5000 ms. */
export function connectTimeout(params: URLSearchParams, shown: string): number {
  const v = params.get('connectTimeoutMs');
  if (v === null) return 5_000;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw new Error(`${shown}: connectTimeoutMs must be a positive integer (ms), got "${v}"`);
  return Number(v);
}

/** The TLS parameters of the rediss-sentinel:// and rediss-cluster:// forms: files, read when the backend opens. */
export const TLS_PARAMS = ['tlsCaFile', 'tlsCertFile', 'tlsKeyFile'] as const;

export interface TlsFiles {
  /** PEM file of the CA(s) that signed the servers' certificates; default: Node's trust store (plus NODE_EXTRA_CA_CERTS) */
  caFile: string | undefined;
  /** PEM client certificate and key, for servers that require one (tls-auth-clients yes) */
  certFile: string | undefined;
  keyFile: string | undefined;
}

/**
 * The TLS settings of a multi-host URL: undefined for the plain scheme (which refuses tls*
 * parameters, naming tlsScheme, its TLS form), the files named for the TLS one. A certificate needs its key and the reverse.
 */
export function tlsFiles(u: MultiHostUrl, tls: boolean, shown: string, tlsScheme = u.scheme.replace(/^redis-/, 'rediss-')): TlsFiles | undefined {
  const given = TLS_PARAMS.filter((p) => u.params.has(p));
  if (!tls) {
    if (given.length > 0) throw new Error(`${shown}: ${given.join(', ')} need${given.length === 1 ? 's' : ''} TLS: use the ${tlsScheme}:// scheme`);
    return undefined;
  }
  for (const p of given) if (!u.params.get(p)) throw new Error(`${shown}: ${p} must name a file`);
  const files = { caFile: u.params.get('tlsCaFile') ?? undefined, certFile: u.params.get('tlsCertFile') ?? undefined, keyFile: u.params.get('tlsKeyFile') ?? undefined };
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) throw new Error(`${shown}: tlsCertFile and tlsKeyFile go together (a client certificate and its key)`);
  return files;
}

/** Refuses parameters a form does not know (a misspelt one would otherwise be ignored). */
export function checkParams(u: MultiHostUrl, known: readonly string[], shown: string): void {
  for (const key of u.params.keys()) if (!known.includes(key)) throw new Error(`${shown}: unknown parameter "${key}" (known: ${known.join(', ')})`);
}

/** Node TLS options from the files (read now: a missing file fails the opening, naming it). */
export async function tlsOptions(files: TlsFiles, shown: string): Promise<{ ca?: Buffer; cert?: Buffer; key?: Buffer }> {
  const read = async (param: string, file: string | undefined) => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (error) {
      throw new Error(`${shown}: cannot read ${param} ${file}: ${(error as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read('tlsCaFile', files.caFile), read('tlsCertFile', files.certFile), read('tlsKeyFile', files.keyFile)]);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}
