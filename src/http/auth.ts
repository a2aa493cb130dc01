// Bearer-token check in constant time (both sides hashed first, so lengths never leak).
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function bearerMatches(header: string | undefined, token: string): boolean {
  if (typeof header !== 'string') return false;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  const presented = m?.[1] ?? '';
  // Compare even when the header is malformed, so timing says nothing about why it failed.
  return timingSafeEqual(digest(presented), digest(token)) && m !== null;
}
