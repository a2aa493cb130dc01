// How to start a sibling module of the running code as a child process: its .ts source through
// tsx when the caller runs from sources (tests, benchmarks), its compiled .js with plain node when
// the caller runs from dist/ (the CLI, the installed package, where tsx is not installed).
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
  const path = fileURLToPath(new URL(`${name}${fromSource ? '.ts' : '.js'}`, base));
  // tsx is resolved from here, not from the caller's working directory, and only when needed:
  // it is a development dependency, absent from an installed package.
  return { path, execArgv: fromSource ? ['--import', import.meta.resolve('tsx')] : [] };
}
