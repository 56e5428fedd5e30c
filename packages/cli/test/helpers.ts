import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export * from '@idlemesh/sdk/testing';

export const BIN = fileURLToPath(new URL('../../bin/idlemesh.js', import.meta.url));

export interface CliRun { code: number | null; stdout: string; stderr: string }

/** Runs the built CLI as a child process (asynchronously, so a fake server in this process keeps serving). */
export function cli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, IDLEMESH_COORDINATOR: '', ...opts.env },
      cwd: opts.cwd ?? process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
