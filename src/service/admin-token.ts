// The admin token: from ALLOT_ADMIN_TOKEN, else generated once and kept in the data dir
// (mode 0600) so restarts keep it. `generated` tells the banner to print it, once.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AdminToken {
  token: string;
  generated: boolean;
  /** Where a generated token is kept, or null when it came from the environment. */
  path: string | null;
}

export function resolveAdminToken(configured: string | undefined, dataDir: string): AdminToken {
  if (configured !== undefined) return { token: configured, generated: false, path: null };
  const path = join(dataDir, 'admin-token');
  try {
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 16) return { token, generated: false, path };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dataDir, { recursive: true });
  const token = `allot_${randomBytes(24).toString('base64url')}`;
  // 'wx' fails if another instance wrote it first; then theirs is the token.
  try {
    writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { token: readFileSync(path, 'utf8').trim(), generated: false, path };
    throw err;
  }
  return { token, generated: true, path };
}
