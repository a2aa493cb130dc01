// Runs the real `allot` command (`node bin/allot.js`, the compiled CLI) to its end, in an
// environment without allot's own settings, as a user would.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const ALLOT_SETTINGS = /^(ALLOT_|DATABASE_URL|DB_|PORT$|HOST$|LOG_LEVEL$|NODE_TEST|NODE_OPTIONS$|REDIS_URL$|LOCKS_URL$|LOCKS_DOWN$)/;

/** `env` is added to the cleaned environment; the run is killed (and rejected) after `timeoutMs`. */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  const clean: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!ALLOT_SETTINGS.test(k)) clean[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/allot.js', ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`allot ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
