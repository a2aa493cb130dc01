#!/usr/bin/env node
// Entry point of the `allot` command: runs the compiled CLI (dist/, built by `npm run build`,
// which `npm install` runs in a clone through the prepare script).
const main = new URL('../dist/cli/main.js', import.meta.url);
try {
  await import(main.href);
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes(main.pathname)) {
    process.stderr.write('allot: the compiled CLI (dist/cli/main.js) is missing. In a clone of the repository run `npm run build` (or `npm install`, which builds it) and try again.\n');
    process.exit(1);
  }
  throw err;
}
