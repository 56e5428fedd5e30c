// The peers `npm run bench -- compare` measures against (BullMQ, graphile-worker)
// are not idlemesh dependencies: they live in bench/contenders/package.json and
// are installed there on first use. Resolution starts in bench/contenders, so a
// copy already in the workspace's node_modules is used as is.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../contenders/', import.meta.url));
const req = createRequire(join(dir, 'package.json'));

export function load(name) {
  try {
    return req(name);
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
  }
  console.error(`[compare] ${name} not found: npm install in ${dir}`);
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  return req(name);
}
