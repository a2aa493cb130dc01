// Bounded resource names. A lock key (and the fence resource named after it) longer than
// MAX_RESOURCE_LENGTH is stored under a fixed-length form instead: its first 160 characters, '#',
// and the SHA-256 (hex, of its UTF-8) of the whole name. The form is 224-225 characters long, so it
// fits a varchar(255) fence column and keeps Redis keys bounded, and it can never equal a name that
// is stored as is (those are at most 200 characters long): two names share a form only if their
// SHA-256 collides. Every backend and fence store applies this one function.
import { createHash } from 'node:crypto';

/** names up to this length (in UTF-16 code units, JavaScript's String length) are stored as is */
export const MAX_RESOURCE_LENGTH = 200;
const READABLE_PREFIX = 160;

export function boundedResource(resource: string): string {
  if (resource.length <= MAX_RESOURCE_LENGTH) return resource;
  let head = resource.slice(0, READABLE_PREFIX);
  // Never cut a surrogate pair in half (a lone surrogate is not valid UTF-8).
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${head}#${createHash('sha256').update(resource, 'utf8').digest('hex')}`;
}
