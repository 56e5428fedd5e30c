// Runs every compiled test file with node's test runner, so all packages share
// one runner and one report. Pass file filters as arguments to run fewer.
// --test-force-exit: a file whose tests all finished ends even if a library (node-llama-cpp, undici) left a handle open.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const files = [];
for (const pkg of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', pkg, 'dist', 'test');
  try { walk(dir, files); } catch { /* package without tests */ }
}
const selected = files.filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
console.error(`running ${selected.length} test files: ${selected.map((f) => relative(root, f)).join(', ')}`);
const concurrency = process.env.IDLEMESH_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-timeout=300000', ...selected], { stdio: 'inherit' });
process.exit(r.status ?? 1);
