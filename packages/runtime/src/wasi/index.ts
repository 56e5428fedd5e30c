/**
 * A deterministic subset of wasi_snapshot_preview1: stdin is the task input,
 * stdout the task output, stderr is kept only as a short tail for error
 * messages. No files, no clock (time is 0), no entropy (random_get is a fixed
 * sequence), no arguments, no environment.
 */
import type { RunState } from '../exec/state.js';
import { ProcExit } from '../exec/state.js';

const SUCCESS = 0;
const EBADF = 8;
const EINVAL = 28;
const ESPIPE = 70;

const FILETYPE_CHARACTER_DEVICE = 2;
const RIGHT_FD_READ = 1n << 1n;
const RIGHT_FD_WRITE = 1n << 6n;

type HostFn = (...args: never[]) => unknown;

export function wasiImports(current: () => RunState): Record<string, HostFn> {
  const iovecs = (s: RunState, fn: string, iovs: number, count: number): Array<[number, number]> => {
    const v = s.view(fn, iovs, count * 8);
    const out: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) out.push([v.getUint32(i * 8, true), v.getUint32(i * 8 + 4, true)]);
    return out;
  };
  const zeroPair = (a: number, b: number): number => {
    const s = current();
    s.view('wasi', a, 4).setUint32(0, 0, true);
    s.view('wasi', b, 4).setUint32(0, 0, true);
    return SUCCESS;
  };

  return {
    fd_write: (fd: number, iovs: number, count: number, nwritten: number): number => {
      if (fd !== 1 && fd !== 2) return EBADF;
      const s = current();
      let total = 0;
      for (const [ptr, len] of iovecs(s, 'fd_write', iovs, count)) {
        s.charge(len);
        const bytes = s.mem('fd_write', ptr, len);
        if (fd === 1) s.write(bytes);
        else s.writeStderr(bytes);
        total += len;
      }
      s.view('fd_write', nwritten, 4).setUint32(0, total, true);
      return SUCCESS;
    },
    fd_read: (fd: number, iovs: number, count: number, nread: number): number => {
      if (fd !== 0) return EBADF;
      const s = current();
      let total = 0;
      for (const [ptr, len] of iovecs(s, 'fd_read', iovs, count)) {
        const n = Math.min(len, s.input.length - s.inputPos);
        s.charge(n);
        s.mem('fd_read', ptr, n).set(s.input.subarray(s.inputPos, s.inputPos + n));
        s.inputPos += n;
        total += n;
        if (n < len) break;
      }
      s.view('fd_read', nread, 4).setUint32(0, total, true);
      return SUCCESS;
    },
    fd_close: (fd: number): number => (fd >= 0 && fd <= 2 ? SUCCESS : EBADF),
    fd_fdstat_get: (fd: number, ptr: number): number => {
      if (fd < 0 || fd > 2) return EBADF;
      const v = current().view('fd_fdstat_get', ptr, 24);
      v.setUint8(0, FILETYPE_CHARACTER_DEVICE);
      v.setUint16(2, 0, true);
      v.setBigUint64(8, fd === 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE, true);
      v.setBigUint64(16, 0n, true);
      return SUCCESS;
    },
    fd_seek: (fd: number): number => (fd >= 0 && fd <= 2 ? ESPIPE : EBADF),
    fd_prestat_get: (): number => EBADF,
    fd_prestat_dir_name: (): number => EBADF,
    proc_exit: (code: number): never => {
      throw new ProcExit(code);
    },
    args_sizes_get: zeroPair,
    args_get: (): number => SUCCESS,
    environ_sizes_get: zeroPair,
    environ_get: (): number => SUCCESS,
    clock_time_get: (id: number, _precision: bigint, ptr: number): number => {
      if (id < 0 || id > 3) return EINVAL;
      current().view('clock_time_get', ptr, 8).setBigUint64(0, 0n, true);
      return SUCCESS;
    },
    clock_res_get: (id: number, ptr: number): number => {
      if (id < 0 || id > 3) return EINVAL;
      current().view('clock_res_get', ptr, 8).setBigUint64(0, 1n, true);
      return SUCCESS;
    },
    random_get: (buf: number, len: number): number => {
      const s = current();
      s.charge(len);
      const out = s.mem('random_get', buf, len);
      let x = s.rng;
      for (let i = 0; i < out.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out[i] = x & 0xff;
      }
      s.rng = x;
      return SUCCESS;
    },
    sched_yield: (): number => SUCCESS,
  };
}
