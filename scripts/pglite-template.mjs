#!/usr/bin/env node
// Prepares what new embedded (PGlite) databases are made from, in ALLOT_CACHE_DIR (default
// $XDG_CACHE_HOME/allot or ~/.cache/allot), if it is not there yet: the template (initdb's
// cluster, migrated) and a spare copy (about 5 s, once), so that the first `npm start` on a fresh
// data dir is as fast as the next ones. Run after the build (it loads dist/). It never fails its
// caller: without a writable cache dir, a new data dir is initialised in place (about 3 s more).
// See docs/operations.md ("Start, stop, migrate").
try {
  await import('../dist/adapters/sql/pglite-template-main.js');
} catch (err) {
  process.stderr.write(`allot: could not prepare the embedded database template (the first start will initialise its own): ${err?.message ?? err}\n`);
}
