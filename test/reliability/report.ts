/**
 * `npm run test:reliability`: runs the reliability campaign (test/reliability/*.test.ts, or the files given) and
 * prints the summary table — faults injected / survived, mutations tried / refused, fuzz cases run / failures,
 * authorization cases / refused, limits checked / held — with the seed that replays the run. Exits non-zero if any
 * test failed, any case misbehaved, or a part of the campaign reported nothing.
 *
 *   npm run test:reliability                                  # the bounded form CI runs
 *   SOLEDAD_RELIABILITY_SCALE=5 npm run test:reliability      # five times the cases
 *   SOLEDAD_RELIABILITY_SEED=1234 npm run test:reliability    # replay a schedule
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { TallyKind, TallyLine } from './common.js';

const here = import.meta.dirname;
const root = join(here, '..', '..');
const files = process.argv.length > 2
  ? process.argv.slice(2)
  : readdirSync(here).filter((f) => f.endsWith('.test.ts')).sort().map((f) => relative(root, join(here, f)));
const seed = process.env['SOLEDAD_RELIABILITY_SEED'] ?? String((Math.random() * 2 ** 32) >>> 0);
const scale = process.env['SOLEDAD_RELIABILITY_SCALE'] ?? '1';
const work = mkdtempSync(join(tmpdir(), 'soledad-reliability-'));
const tallyFile = join(work, 'tally.jsonl');

const started = Date.now();
const code = await new Promise<number>((resolve) => {
  const child = spawn(process.execPath, [
    '--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', '--test-reporter=spec', ...files,
  ], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, SOLEDAD_RELIABILITY_TALLY: tallyFile, SOLEDAD_RELIABILITY_SEED: seed, SOLEDAD_RELIABILITY_SCALE: scale },
  });
  child.once('exit', (c, signal) => resolve(c ?? (signal === null ? 1 : 128)));
});

const lines: TallyLine[] = existsSync(tallyFile)
  ? readFileSync(tallyFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as TallyLine)
  : [];
rmSync(work, { recursive: true, force: true });

const HEADINGS: Record<TallyKind, [string, string, string]> = {
  faults: ['Faults', 'injected', 'survived'],
  mutations: ['Hostile-server mutations', 'tried', 'refused'],
  fuzz: ['Fuzz cases', 'run', 'passed'],
  auth: ['Authorization cases', 'tried', 'refused'],
  limits: ['Limits', 'checked', 'held'],
};

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const out: string[] = [];
out.push('', `Reliability campaign — seed ${seed}, scale ${scale}, ${Math.round((Date.now() - started) / 1000)} s`, '');
out.push(`${pad('area / group', 58)} ${lpad('tried', 8)} ${lpad('ok', 8)} ${lpad('failed', 7)}`);
out.push('-'.repeat(84));
let bad = false;
const summary: string[] = [];
for (const kind of Object.keys(HEADINGS) as TallyKind[]) {
  const group = lines.filter((l) => l.kind === kind);
  const [title, triedName, okName] = HEADINGS[kind];
  const tried = group.reduce((s, l) => s + l.tried, 0);
  const ok = group.reduce((s, l) => s + l.ok, 0);
  out.push(`${pad(title, 58)} ${lpad(String(tried), 8)} ${lpad(String(ok), 8)} ${lpad(String(tried - ok), 7)}`);
  for (const l of group) out.push(`  ${pad(l.group, 56)} ${lpad(String(l.tried), 8)} ${lpad(String(l.ok), 8)} ${lpad(String(l.tried - l.ok), 7)}`);
  summary.push(`${title}: ${tried} ${triedName} / ${kind === 'fuzz' ? `${tried - ok} failures` : `${ok} ${okName}`}`);
  if (tried === 0 && process.argv.length <= 2) {
    bad = true;
    out.push(`  (nothing reported: a part of the campaign did not run)`);
  }
  if (ok < tried) bad = true;
}
out.push('-'.repeat(84), ...summary, '');
// Every group reports the seed it ran with; the header shows it once.
const notes = lines.flatMap((l) => (l.notes ?? []).filter((n) => n !== `seed ${seed}`).map((n) => `[${l.group}] ${n}`));
if (notes.length > 0) out.push('Notes:', ...notes.map((n) => `  ${n}`), '');
out.push(code === 0 && !bad ? 'RESULT: PASS' : `RESULT: FAIL (test runner exit ${code}${bad ? ', cases failed or missing' : ''})`);
process.stdout.write(`${out.join('\n')}\n`);
process.exit(code === 0 && !bad ? 0 : 1);
