#!/usr/bin/env node
import { run } from './program.js';

// `idlemesh jobs | head`: a reader that goes away is not an error of ours.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  process.stderr.write(`error IM_INTERNAL: cannot write to stdout: ${err.message}\n`);
  process.exit(1);
});

// Under a supervisor that may die without stopping us (a test runner that times
// out, a shell script killed with -9), IDLEMESH_EXIT_WITH_PARENT=1 makes this
// process stop itself gracefully when its parent is gone.
if (process.env.IDLEMESH_EXIT_WITH_PARENT === '1') {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
  }, 1000).unref();
}

process.exitCode = await run(process.argv);
