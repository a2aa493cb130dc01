// Progress of a lab run: one redrawn line on a terminal, sparse plain lines in CI logs (where a
// `\r` per tick would bloat the log into one enormous line).

export interface ProgressOptions {
  total: number;
  label: string;
  stream: NodeJS.WriteStream | NodeJS.WritableStream;
  isTTY: boolean;
  /** TTY redraw interval; default 100 ms */
  intervalMs?: number;
}

export interface Progress {
  tick(n?: number): void;
  done(summary?: string): void;
}

const BAR = 24;
const PLAIN_EVERY_MS = 2000;

function elapsed(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.floor(s - m * 60)).padStart(2, '0')}s`;
}

export function createProgress(opts: ProgressOptions): Progress {
  const { total, label, stream, isTTY } = opts;
  const intervalMs = Math.max(10, opts.intervalMs ?? 100);
  const start = performance.now();
  let count = 0;
  let finished = false;
  let dirty = true;
  let lastDraw = 0;
  let lastPlain = start;
  let lastQuarter = 0;
  let lastPlainCount = -1;
  let timer: NodeJS.Timeout | undefined;

  const stats = (): { ratio: number; rate: string; time: string } => {
    const ms = performance.now() - start;
    const ratio = total > 0 ? Math.min(1, Math.max(0, count / total)) : 0;
    const rate = ms > 0 ? Math.round((count * 1000) / ms) : 0;
    return { ratio, rate: `${rate}/s`, time: elapsed(ms) };
  };

  const ttyLine = (): string => {
    const { ratio, rate, time } = stats();
    const filled = Math.round(ratio * BAR);
    const line = `${label} [${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ${count}/${total} ${rate} ${time}`;
    // A line wider than the terminal wraps, and `\r` then only rewrites its last part.
    const columns = 'columns' in stream && typeof stream.columns === 'number' ? stream.columns : 0;
    return columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
  };

  const plainLine = (): string => {
    const { ratio, rate, time } = stats();
    return `${label}: ${count}/${total} (${Math.round(ratio * 100)}%) ${rate} ${time}`;
  };

  const draw = (): void => {
    stream.write(`\r${ttyLine()}\x1b[K`);
    dirty = false;
    lastDraw = performance.now();
  };

  const printPlain = (): void => {
    stream.write(`${plainLine()}\n`);
    lastPlain = performance.now();
    lastPlainCount = count;
  };

  if (isTTY) {
    draw();
    // Redraw on a clock rather than per tick: thousands of ticks a second cost one write per interval,
    // and the elapsed time keeps moving while a fault stalls the workers.
    timer = setInterval(() => {
      if (dirty || performance.now() - lastDraw >= 1000) draw();
    }, intervalMs);
    timer.unref();
  }

  return {
    tick(n = 1) {
      if (finished) return;
      count += n;
      if (isTTY) {
        dirty = true;
        return;
      }
      const quarter = total > 0 ? Math.min(4, Math.floor((count / total) * 4)) : 0;
      if (quarter > lastQuarter) {
        lastQuarter = quarter;
        printPlain();
      } else if (performance.now() - lastPlain >= PLAIN_EVERY_MS) {
        printPlain();
      }
    },
    done(summary) {
      if (finished) return;
      finished = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      if (isTTY) {
        draw();
        stream.write(summary ? ` ${summary}\n` : '\n');
        return;
      }
      if (summary) stream.write(`${plainLine()} ${summary}\n`);
      else if (lastPlainCount !== count) printPlain();
    },
  };
}
