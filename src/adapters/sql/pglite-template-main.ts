// Builds what new embedded databases are made from (connect.ts): the template migrated with the
// service's schema, and a spare copy of it, in the cache dir given as the first argument (default
// ALLOT_CACHE_DIR, else ~/.cache/allot). A process of its own: initdb is seconds of wasm on the
// main thread, which a process that serves requests must not spend. `allot serve` starts it once
// it listens when its new data dir had no template to copy; scripts/pglite-template.mjs runs it
// after the build.
import { defaultPgliteCacheDir, ensurePgliteTemplate, preparePgliteSpare } from './connect.ts';
import { defaultPgliteSchema } from './migrate.ts';

const cacheDir = process.argv[2] ?? defaultPgliteCacheDir();
const template = await ensurePgliteTemplate(cacheDir, defaultPgliteSchema());
if (template !== null) await preparePgliteSpare(template);
