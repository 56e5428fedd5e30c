import { randomHex } from './crypto.js';

/** Job ids sort by creation time: base36 millis then random. */
export function newJobId(now: number): string {
  return `job_${now.toString(36).padStart(9, '0')}${BigInt(`0x${randomHex(10)}`).toString(36).padStart(16, '0')}`;
}

export function taskId(jobId: string, index: number): string {
  return `${jobId}/${index}`;
}

export function parseTaskId(id: string): { jobId: string; index: number } {
  const slash = id.lastIndexOf('/');
  return { jobId: id.slice(0, slash), index: Number(id.slice(slash + 1)) };
}
