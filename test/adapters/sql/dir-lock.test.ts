// One process per PGlite data dir.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { lockDataDir } from '../../../src/adapters/sql/dir-lock.ts';

test('a held lock refuses a second holder, naming the pid; release frees it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'allot-lock-'));
  try {
    // A live foreign holder: this test's parent process.
    writeFileSync(join(dir, 'allot.lock'), `${process.ppid}\n`);
    assert.throws(() => lockDataDir(dir), new RegExp(`in use by another allot process \\(pid ${process.ppid}\\)`));
    rmSync(join(dir, 'allot.lock'));
    const release = lockDataDir(dir);
    assert.equal(readFileSync(join(dir, 'allot.lock'), 'utf8').trim(), String(process.pid));
    assert.throws(() => lockDataDir(dir), /already open in this process/);
    release();
    lockDataDir(dir)();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stale lock (its process is gone) is taken over', () => {
  const dir = mkdtempSync(join(tmpdir(), 'allot-lock-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(dir, 'allot.lock'), `${dead}\n`);
    const release = lockDataDir(dir);
    assert.equal(readFileSync(join(dir, 'allot.lock'), 'utf8').trim(), String(process.pid));
    release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
