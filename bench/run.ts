/**
 * `npm run bench [-- --quick]`: every figure is measured in the same run as what it is compared with, so a noisy
 * machine still compares fairly. Results: a table on stdout and bench/results/<date>.json.
 */
import { cpus } from 'node:os';
import { runLocalDbScenarios } from './local-db.js';
import { report, type ScenarioResult } from './report.js';
import { runSyncScenarios, seedScenarios } from './sync.js';
import { runBlobScenarios } from './blobs.js';

const args = new Set(process.argv.slice(2));
if (args.has('--help') || args.has('-h')) {
  console.log('Usage: npm run bench [-- --quick]\n  --quick  small sizes (CI smoke)\nWrites bench/results/<date>.json.');
  process.exit(0);
}
const quick = args.has('--quick');

const results: ScenarioResult[] = [];
results.push(...(await runLocalDbScenarios(quick ? 100 : 1000, 10 * 1024)));
results.push(...(await runSyncScenarios(seedScenarios(quick ? 0.1 : 1))));
results.push(...(await runBlobScenarios(quick)));

const file = report(results, { quick, node: process.version, cpus: cpus().length, date: new Date().toISOString() });
console.log(`wrote ${file}`);
