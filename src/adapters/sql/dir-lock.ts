// One process per PGlite data dir: PGlite is a database inside the process, and two processes
// writing one data dir would corrupt it. A lock file holds the owner's PID; a stale one (its
// process is gone) is taken over.
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the data dir's lock or throws a message that says who holds it. Returns the release. */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, 'allot.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        rmSync(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`the embedded database in ${dir} is in use by another allot process (pid ${pid}); stop it first, or use another ALLOT_DATA_DIR / a server database`);
      }
      if (pid === process.pid) throw new Error(`the embedded database in ${dir} is already open in this process`);
      rmSync(path, { force: true }); // stale: its process is gone
    }
  }
  throw new Error(`could not lock the embedded database in ${dir}`);
}
