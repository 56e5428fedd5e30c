import { sha256Hex } from '@idlemesh/protocol';
import type { JobLimits, ModuleAbi } from '@idlemesh/protocol';
import type { RunResult, TaskSandbox } from '../../src/sandbox.js';

/**
 * Stands in for @idlemesh/runtime: "runs" a module by upper-casing the input
 * (fuel = 7 per byte). Input starting with "block" runs until aborted.
 */
export class FakeSandbox implements TaskSandbox {
  readonly added: string[] = [];
  running = 0;
  aborted = 0;
  private readonly modules = new Map<string, ModuleAbi>();

  hasModule(hash: string): boolean {
    return this.modules.has(hash);
  }

  async addModule(hash: string, bytes: Uint8Array, abi: ModuleAbi): Promise<void> {
    if ((await sha256Hex(bytes)) !== hash) throw new Error('hash mismatch');
    this.modules.set(hash, abi);
    this.added.push(hash);
  }

  async run(task: { moduleHash: string; input: Uint8Array; limits: JobLimits }, signal?: AbortSignal): Promise<RunResult> {
    if (!this.modules.has(task.moduleHash)) throw new Error('module not added');
    const text = Buffer.from(task.input).toString('utf8');
    this.running++;
    try {
      if (text.startsWith('block')) {
        await new Promise<void>((_, reject) => {
          signal?.addEventListener('abort', () => {
            this.aborted++;
            reject(new Error('aborted'));
          }, { once: true });
        });
      }
      await new Promise((r) => setTimeout(r, 5));
      if (text === 'trap') return { ok: false, fuel: 3, error: { code: 'IM_TRAP', message: 'unreachable' } };
      return { ok: true, output: new Uint8Array(Buffer.from(text.toUpperCase())), fuel: 7 * task.input.length };
    } finally {
      this.running--;
    }
  }

  async close(): Promise<void> {}
}
