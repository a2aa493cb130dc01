// Parses the multi-host lock URLs (redis-sentinel://h1:p1,h2:p2/…, redis-cluster://h1:p1,…), which
// WHATWG URL refuses (a comma list is not a host), and masks their password for display.

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
