/**
 * Building llama.cpp's `ggml-rpc-server` and `llama-server` once per machine.
 *
 * The source is the git bundle inside node-llama-cpp's npm package, so the
 * binaries match the llama.cpp that node-llama-cpp runs in-process (same
 * kernels, same greedy output). The build lives outside the repository, in
 * `<cache>/llama-rpc/<bundle sha256 prefix>/`, keyed by the bundle so a
 * node-llama-cpp upgrade builds afresh and an unchanged one returns at once.
 *
 * Only the two targets the split engine runs are built (no tests, examples,
 * web UI, curl or OpenSSL: nothing is downloaded). A lock file keeps two
 * processes (two agents, two test files) from building into the same
 * directory; the second waits and then finds the finished build. The
 * manifest `build.json` is written last: its presence means the binaries are
 * complete.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ImError } from '@idlemesh/protocol';

/** The cmake targets built: the RPC server every stage runs, and the head's OpenAI server. */
export const LLAMA_RPC_TARGETS = ['ggml-rpc-server', 'llama-server'] as const;

/**
 * Options this llama.cpp accepts (checked against its CMakeLists): GGML_RPC
 * builds the RPC backend; LLAMA_CURL is deprecated (ignored) in this version,
 * and LLAMA_OPENSSL / LLAMA_USE_PREBUILT_UI are what would reach the network
 * or need OpenSSL, so they are off. Static libraries make the two binaries
 * self-contained, so they can be copied out of the build tree.
 */
export const LLAMA_RPC_CMAKE_FLAGS = [
  '-DCMAKE_BUILD_TYPE=Release',
  '-DGGML_RPC=ON',
  '-DGGML_NATIVE=ON',
  '-DBUILD_SHARED_LIBS=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_UI=OFF',
  '-DLLAMA_USE_PREBUILT_UI=OFF',
  '-DLLAMA_OPENSSL=OFF',
] as const;

export interface LlamaRpcBinaries {
  /** The directory of this build (`<cache>/llama-rpc/<prefix>`). */
  dir: string;
  rpcServer: string;
  llamaServer: string;
  /** sha256 of the bundle the source came from. */
  bundleSha256: string;
  /** False when this call built; true when a finished build was found. */
  cached: boolean;
  /** Wall time of the build that produced these binaries (not of this call when cached). */
  buildSeconds: number;
}

export type BuildProgress =
  | { type: 'hash'; bundle: string }
  | { type: 'wait-lock'; lock: string; holderPid: number }
  | { type: 'clone'; dir: string }
  | { type: 'configure' }
  | { type: 'compile'; done: number; total: number; elapsedSeconds: number }
  | { type: 'done'; seconds: number };

export interface BuildLlamaRpcOptions {
  /** The llama.cpp git bundle; default: node-llama-cpp's `llama/gitRelease.bundle`, found from here or the working directory. */
  bundle?: string;
  /** The idlemesh cache root; default cacheRoot(). */
  cacheDir?: string;
  /** Parallel compile jobs; default 2 (the machines this runs on are shared). */
  jobs?: number;
  onProgress?: (p: BuildProgress) => void;
  /** How long to wait for another process's build; default 1 hour. */
  lockTimeoutMs?: number;
}

interface Manifest {
  bundleSha256: string;
  rpcServer: string;
  llamaServer: string;
  buildSeconds: number;
  flags: string[];
  builtAt: string;
}

/** `$IDLEMESH_CACHE_DIR`, else `$XDG_CACHE_HOME/idlemesh`, else `~/.cache/idlemesh`. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.IDLEMESH_CACHE_DIR) return resolve(env.IDLEMESH_CACHE_DIR);
  if (env.XDG_CACHE_HOME) return join(resolve(env.XDG_CACHE_HOME), 'idlemesh');
  return join(homedir(), '.cache', 'idlemesh');
}

/** node-llama-cpp's bundled llama.cpp source, looked for upward from this module and from the working directory. */
export function findLlamaBundle(): string | undefined {
  const starts = [dirname(fileURLToPath(import.meta.url)), process.cwd()];
  for (const start of starts) {
    for (let dir = start; ; dir = dirname(dir)) {
      const p = join(dir, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');
      if (existsSync(p)) return p;
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

function sha256File(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const h = createHash('sha256');
    createReadStream(path).on('data', (d) => h.update(d)).on('error', rej).on('end', () => res(h.digest('hex')));
  });
}

/** The finished build in `dir`, if its manifest and binaries are there. */
async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'build.json'), 'utf8')) as Manifest;
    if (existsSync(m.rpcServer) && existsSync(m.llamaServer)) return m;
  } catch {
    /* no build yet */
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dir>.lock` (O_EXCL create holding our pid). A lock whose holder is
 * gone (killed mid-build) is taken over; a live holder is waited for.
 */
async function acquireLock(lock: string, timeoutMs: number, onProgress: (p: BuildProgress) => void): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  for (;;) {
    try {
      const fh = await open(lock, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number.parseInt(await readFile(lock, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      // A stale lock: rename-then-remove so two waiters cannot both delete a fresh one.
      const stale = `${lock}.stale-${process.pid}`;
      await rename(lock, stale).then(() => rm(stale, { force: true }), () => undefined);
      continue;
    }
    if (!announced) {
      onProgress({ type: 'wait-lock', lock, holderPid: holder });
      announced = true;
    }
    if (Date.now() > deadline) throw new ImError('IM_SPLIT_BUILD_FAILED', `another process (pid ${holder}) has held ${lock} for over ${Math.round(timeoutMs / 1000)} s; remove the file if that build is gone`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Runs a command; rejects with its last output lines when it fails. `onLine` sees stdout lines. */
function run(cmd: string, args: string[], cwd: string, onLine?: (line: string) => void): Promise<void> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const keep = (line: string): void => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
    };
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        keep(line);
        onLine?.(line);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => d.split('\n').forEach(keep));
    child.on('error', (err) => rej(new ImError('IM_SPLIT_BUILD_FAILED', `cannot run ${cmd}: ${err.message}`, { cause: err })));
    child.on('close', (code) => {
      if (code === 0) res();
      else rej(new ImError('IM_SPLIT_BUILD_FAILED', `${cmd} ${args.join(' ')} exited with ${code}:\n${tail.join('\n')}`));
    });
  });
}

/** Whether the build can run here: cmake, a C++ compiler, git. Undefined when it can, else why not. */
export async function buildUnavailableReason(): Promise<string | undefined> {
  const probe = (cmd: string): Promise<boolean> => new Promise((res) => {
    const c = spawn(cmd, ['--version'], { stdio: 'ignore' });
    c.on('error', () => res(false));
    c.on('close', (code) => res(code === 0));
  });
  if (!findLlamaBundle()) return 'node-llama-cpp (with llama/gitRelease.bundle) is not installed';
  for (const cmd of ['cmake', 'git', 'c++']) if (!(await probe(cmd))) return `${cmd} is not installed`;
  return undefined;
}

/**
 * Builds (or finds) the RPC server and llama-server for the installed
 * node-llama-cpp. Idempotent and safe to call from several processes.
 */
export async function buildLlamaRpc(options: BuildLlamaRpcOptions = {}): Promise<LlamaRpcBinaries> {
  const onProgress = options.onProgress ?? (() => undefined);
  const bundle = options.bundle ?? findLlamaBundle();
  if (!bundle) throw new ImError('IM_SPLIT_BUILD_FAILED', 'node-llama-cpp/llama/gitRelease.bundle not found; install node-llama-cpp');
  onProgress({ type: 'hash', bundle });
  const bundleSha256 = await sha256File(bundle);
  const dir = join(options.cacheDir ?? cacheRoot(), 'llama-rpc', bundleSha256.slice(0, 16));
  const result = (m: Manifest, cached: boolean): LlamaRpcBinaries => ({ dir, rpcServer: m.rpcServer, llamaServer: m.llamaServer, bundleSha256, cached, buildSeconds: m.buildSeconds });

  const found = await readManifest(dir);
  if (found) return result(found, true);

  await mkdir(dirname(dir), { recursive: true });
  const release = await acquireLock(`${dir}.lock`, options.lockTimeoutMs ?? 3_600_000, onProgress);
  try {
    const again = await readManifest(dir); // built by the process we waited for
    if (again) return result(again, true);
    const started = Date.now();
    const src = join(dir, 'src');
    const build = join(dir, 'build');
    if (!existsSync(join(src, 'CMakeLists.txt'))) {
      // A clone cut short leaves a directory git refuses to clone into.
      await rm(src, { recursive: true, force: true });
      await mkdir(dir, { recursive: true });
      onProgress({ type: 'clone', dir: src });
      await run('git', ['-c', 'advice.detachedHead=false', 'clone', '--quiet', bundle, src], dir);
    }
    onProgress({ type: 'configure' });
    const generator = (await probeNinja()) ? ['-G', 'Ninja'] : [];
    await run('cmake', ['-S', src, '-B', build, ...generator, ...LLAMA_RPC_CMAKE_FLAGS], dir);
    const jobs = options.jobs ?? 2;
    await run('cmake', ['--build', build, '--config', 'Release', '-j', String(jobs), '--target', ...LLAMA_RPC_TARGETS], dir, (line) => {
      // ninja prints "[done/total] …"; make prints "[ pct%] …" (reported as pct/100).
      const m = /^\[\s*(\d+)\/(\d+)\]/.exec(line) ?? /^\[\s*(\d+)%\]/.exec(line);
      if (m) onProgress({ type: 'compile', done: Number(m[1]), total: m[2] ? Number(m[2]) : 100, elapsedSeconds: (Date.now() - started) / 1000 });
    });
    const bin = join(dir, 'bin');
    await mkdir(bin, { recursive: true });
    const rpcServer = join(bin, 'ggml-rpc-server');
    const llamaServer = join(bin, 'llama-server');
    await copyFile(join(build, 'bin', 'ggml-rpc-server'), rpcServer);
    await copyFile(join(build, 'bin', 'llama-server'), llamaServer);
    const manifest: Manifest = { bundleSha256, rpcServer, llamaServer, buildSeconds: Math.round((Date.now() - started) / 100) / 10, flags: [...LLAMA_RPC_CMAKE_FLAGS], builtAt: new Date().toISOString() };
    await writeFile(join(dir, 'build.json.tmp'), JSON.stringify(manifest, null, 2));
    await rename(join(dir, 'build.json.tmp'), join(dir, 'build.json'));
    onProgress({ type: 'done', seconds: manifest.buildSeconds });
    return result(manifest, false);
  } finally {
    await release();
  }
}

function probeNinja(): Promise<boolean> {
  return new Promise((res) => {
    const c = spawn('ninja', ['--version'], { stdio: 'ignore' });
    c.on('error', () => res(false));
    c.on('close', (code) => res(code === 0));
  });
}
