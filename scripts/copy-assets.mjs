// Copies the files of a source tree that tsc does not emit (Lua scripts, HTML, JSON, SQL, …: every
// file not ending in .ts) to the build output, where the compiled code reads them at run time
// (new URL('./lua/', import.meta.url) and the like).
//   node scripts/copy-assets.mjs [FROM TO]...      default: src dist
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
if (args.length % 2 !== 0) {
  console.error('usage: node scripts/copy-assets.mjs [FROM TO]...');
  process.exit(2);
}
const pairs = args.length ? Array.from({ length: args.length / 2 }, (_, i) => [args[2 * i], args[2 * i + 1]]) : [['src', 'dist']];

function copyTree(from, to) {
  for (const name of readdirSync(from)) {
    const src = join(from, name);
    if (statSync(src).isDirectory()) copyTree(src, join(to, name));
    else if (!name.endsWith('.ts')) cpSync(src, join(to, name));
  }
}

for (const [from, to] of pairs) copyTree(from, to);
