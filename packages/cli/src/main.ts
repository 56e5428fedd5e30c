#!/usr/bin/env node
import { run } from './program.js';

// `idlemesh jobs | head`: a reader that goes away is not an error of ours.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  process.stderr.write(`error IM_INTERNAL: cannot write to stdout: ${err.message}\n`);
  process.exit(1);
});

process.exitCode = await run(process.argv);
