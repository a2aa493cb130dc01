// How to start a sibling module of the running code as a child process: its .ts source through
// tsx when the caller runs from sources (tests, benchmarks), its compiled .js with plain node when
// the caller runs from dist/ (the CLI, the installed package, where tsx is not installed).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ChildModule {
  /** absolute path of the module to run */
  path: string;
  /** node options it needs: `--import <tsx>` for a .ts source, none for compiled JavaScript */
  execArgv: string[];
}

/** `base` is the caller's import.meta.url; `name` the sibling's path without extension ('./worker'). */
export function childModule(base: string, name: string): ChildModule {
  const fromSource = base.endsWith('.ts');
  // `npm test` builds dist/ from the current sources first and sets ALLOT_CHILD_FROM_DIST=1: a
  // child started from a test then runs the compiled sibling (about 0.7 s less start-up per
  // process than tsx compiling the sources, for the dozens of race-lab workers a run starts).
  if (fromSource && process.env.ALLOT_CHILD_FROM_DIST === '1') {
    const compiled = fileURLToPath(new URL(`${name}.js`, base)).replace(/([/\\])src([/\\])(?!.*[/\\]src[/\\])/, '$1dist$2');
    if (existsSync(compiled)) return { path: compiled, execArgv: [] };
  }
  const path = fileURLToPath(new URL(`${name}${fromSource ? '.ts' : '.js'}`, base));
  // tsx is resolved from here, not from the caller's working directory, and only when needed:
  // it is a development dependency, absent from an installed package.
  return { path, execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [] };
}
