// The real clock, id and randomness sources.
import { randomFillSync } from 'node:crypto';
import type { Clock, IdSource } from '../../ports/clock.ts';
import type { RandomSource } from '../../ports/random.ts';

export const systemClock: Clock = { now: () => Date.now() };

/** Non-cryptographic: retry jitter. */
export const systemRandom: RandomSource = { next: () => Math.random() };

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32

// Random bytes drawn from the OS 4 KiB at a time (256 ids): one randomFillSync per id cost about
// a tenth of a claim's CPU under a stampede.
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;

function random16(): Buffer {
  if (poolAt + 16 > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const b = POOL.subarray(poolAt, poolAt + 16);
  poolAt += 16;
  return b;
}

/** ULID-shaped ids: 10 chars of time, 16 of randomness; sortable by creation time. */
export const randomIds: IdSource = {
  next(prefix: string): string {
    let t = Date.now();
    let time = '';
    for (let i = 0; i < 10; i++) {
      time = ALPHABET[t % 32] + time;
      t = Math.floor(t / 32);
    }
    const bytes = random16();
    let rand = '';
    for (const b of bytes) rand += ALPHABET[b % 32];
    return `${prefix}${time}${rand}`;
  },
};
