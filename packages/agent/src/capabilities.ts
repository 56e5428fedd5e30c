import { execFile } from 'node:child_process';
import { arch, availableParallelism, platform, totalmem } from 'node:os';
import type { Capabilities } from '@idlemesh/protocol';

export const AGENT_VERSION = '0.1.0';

export interface Gpu {
  name: string;
  memoryMb: number;
}

/** NVIDIA GPUs via nvidia-smi; [] when it is missing, slow or fails. */
export function detectGpus(timeoutMs = 3000): Promise<Gpu[]> {
  return new Promise((resolve) => {
    try {
      execFile(
        'nvidia-smi',
        ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'],
        { timeout: timeoutMs, windowsHide: true },
        (err, stdout) => resolve(err === null ? parseNvidiaSmi(stdout) : []),
      );
    } catch {
      resolve([]);
    }
  });
}

export function parseNvidiaSmi(csv: string): Gpu[] {
  const gpus: Gpu[] = [];
  for (const line of csv.split('\n')) {
    const comma = line.lastIndexOf(',');
    if (comma < 0) continue;
    const name = line.slice(0, comma).trim().slice(0, 200);
    const memoryMb = Math.floor(Number(line.slice(comma + 1).trim()));
    if (name !== '' && Number.isFinite(memoryMb) && memoryMb >= 0) gpus.push({ name, memoryMb });
  }
  return gpus.slice(0, 64);
}

export function buildCapabilities(opts: {
  maxTasks: number;
  maxMemoryMb: number;
  fuelPerSec: number;
  gpus: Gpu[];
  name?: string | undefined;
  ask?: number | undefined;
  region?: string | undefined;
}): Capabilities {
  const caps: Capabilities = {
    runtimes: ['wasm'],
    cores: Math.min(4096, Math.max(1, availableParallelism())),
    memoryMb: Math.max(1, Math.min(opts.maxMemoryMb, Math.floor(totalmem() / (1024 * 1024)))),
    arch: arch().slice(0, 32),
    os: platform().slice(0, 32),
    gpus: opts.gpus,
    maxTasks: opts.maxTasks,
    benchmark: { fuelPerSec: Math.max(0, opts.fuelPerSec) },
    agentVersion: AGENT_VERSION,
  };
  if (opts.name !== undefined) caps.name = opts.name;
  if (opts.ask !== undefined && opts.ask > 0) caps.ask = opts.ask;
  if (opts.region !== undefined) caps.region = opts.region;
  return caps;
}
