// The lab's outputs: the terminal table, the JSON rows behind `allot lab --json`, and the files
// (JSON, HTML) a run can be written to.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { labColumns, renderHtml, rowLabel, verdictOf, type Verdict } from './html.ts';
import type { LabReport, LabRow } from './types.ts';

export interface TableOptions {
  /** ANSI colours; pass false when the output is not a TTY */
  color?: boolean;
}

const ANSI = { red: '\x1b[31m', boldRed: '\x1b[1;31m', green: '\x1b[32m', yellow: '\x1b[33m', dim: '\x1b[2m', reset: '\x1b[0m' };

/** A strategy name is input too: control characters in it must not move the cursor or recolour the terminal. */
function printable(s: string): string {
  let out = '';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    out += code < 0x20 || (code >= 0x7f && code < 0xa0) ? '?' : ch;
  }
  return out;
}

function verdictColor(v: Verdict): string {
  switch (v) {
    case 'ok':
      return ANSI.green;
    case 'ok (unsafe)':
    case 'violated (expected: unsafe)':
      return ANSI.yellow;
    case 'VIOLATED':
      return ANSI.boldRed;
  }
}

/** A plain-text table, one line per row, then one line per failed check. */
export function formatTable(report: LabReport, opts: TableOptions = {}): string {
  const color = opts.color ?? false;
  const paint = (s: string, c: string): string => (color ? `${c}${s}${ANSI.reset}` : s);
  const cells = report.rows.map((row) => labColumns.map((c) => printable(c.cell(row))));
  // Widths are measured on the plain text; colour codes are added after padding so they cannot skew it.
  const widths = labColumns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => [...(r[i] ?? '')].length)));
  const last = labColumns.length - 1;
  const pad = (s: string, i: number): string => {
    // The last column is not padded, so a coloured verdict carries no trailing blanks inside its colour.
    if (i === last && !labColumns[i]?.numeric) return s;
    const w = widths[i] ?? 0;
    const fill = ' '.repeat(Math.max(0, w - [...s].length));
    return labColumns[i]?.numeric ? fill + s : s + fill;
  };
  const joinLine = (parts: string[]): string => parts.join('  ').trimEnd();

  const lines: string[] = [];
  lines.push(joinLine(labColumns.map((c, i) => pad(c.header, i))));
  lines.push(paint(joinLine(widths.map((w) => '-'.repeat(w))), ANSI.dim));
  report.rows.forEach((row, r) => {
    const parts = labColumns.map((c, i) => {
      const text = pad(cells[r]?.[i] ?? '', i);
      if (!color) return text;
      if (i === last) return paint(text, verdictColor(verdictOf(row)));
      return c.bad?.(row) ? paint(text, ANSI.red) : text;
    });
    lines.push(joinLine(parts));
  });
  if (report.rows.length === 0) lines.push('(no rows)');

  const failures = report.rows.flatMap((row) =>
    row.checks
      .filter((c) => !c.ok)
      .map((c) => {
        const line = `${printable(rowLabel(row, report))}: ${printable(c.name)}: ${printable(c.message)}${row.unsafe ? ' (expected: unsafe strategy)' : ''}`;
        return paint(line, row.unsafe ? ANSI.yellow : ANSI.red);
      }),
  );
  if (failures.length > 0) lines.push('', ...failures);
  return lines.join('\n') + '\n';
}

/** The `--json` contract first, then the rest of the row, plus the verdict as the table prints it. */
export type LabJsonRow = LabRow & { verdict: Verdict };

export function toJsonRows(report: LabReport): LabJsonRow[] {
  return report.rows.map((r) => ({
    strategy: r.strategy,
    backend: r.backend,
    requests: r.requests,
    ok: r.ok,
    soldOut: r.soldOut,
    userLimit: r.userLimit,
    oversold: r.oversold,
    duplicates: r.duplicates,
    lostAcks: r.lostAcks,
    retries: r.retries,
    claimsPerSec: r.claimsPerSec,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    scenario: r.scenario,
    requestsPerSec: r.requestsPerSec,
    workers: r.workers,
    errors: r.errors,
    unknown: r.unknown,
    stock: r.stock,
    issued: r.issued,
    claimsInDb: r.claimsInDb,
    durationMs: r.durationMs,
    faults: r.faults,
    unsafe: r.unsafe,
    passed: r.passed,
    verdict: verdictOf(r),
    checks: r.checks,
    timeline: r.timeline,
  }));
}

async function writeText(file: string, text: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text, 'utf8');
}

export async function writeJson(file: string, report: LabReport): Promise<void> {
  await writeText(file, JSON.stringify(toJsonRows(report), null, 2) + '\n');
}

export async function writeHtml(file: string, report: LabReport): Promise<void> {
  await writeText(file, renderHtml(report));
}
