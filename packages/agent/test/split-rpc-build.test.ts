/**
 * The build machinery of engine llamacpp-rpc (clone the bundle, configure,
 * build only the two targets, cache, lock) on a small stand-in project, so
 * it runs in seconds: a git bundle whose CMakeLists defines
 * `ggml-rpc-server` and `llama-server`, plus a target that does not compile
 * (building it would fail the test).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { buildLlamaRpc, buildUnavailableReason, type BuildProgress } from '../src/split/index.js';

const run = promisify(execFile);
const unavailable = await buildUnavailableReason();

const CMAKE = `cmake_minimum_required(VERSION 3.14)
project(stand_in CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY \${CMAKE_BINARY_DIR}/bin)
add_executable(ggml-rpc-server main.cpp)
add_executable(llama-server main.cpp)
add_executable(not-wanted broken.cpp)
`;

/** A git bundle of a stand-in project; `brokenServer` makes llama-server fail to compile. */
async function makeBundle(dir: string, brokenServer = false): Promise<string> {
  const src = join(dir, brokenServer ? 'src-broken' : 'src');
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'CMakeLists.txt'), brokenServer ? CMAKE.replace('add_executable(llama-server main.cpp)', 'add_executable(llama-server broken.cpp)') : CMAKE);
  await writeFile(join(src, 'main.cpp'), '#include <cstdio>\nint main() { std::puts("stand-in"); return 0; }\n');
  await writeFile(join(src, 'broken.cpp'), '#error this target must not be built\n');
  const git = (...args: string[]): Promise<unknown> => run('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main', ...args], { cwd: src });
  await git('init', '-q');
  await git('add', '.');
  await git('commit', '-qm', 'stand-in');
  const bundle = join(dir, brokenServer ? 'broken.bundle' : 'ok.bundle');
  await git('bundle', 'create', '-q', bundle, '--all');
  return bundle;
}

describe('llamacpp-rpc build (stand-in project)', { skip: unavailable ? `cannot build here (${unavailable})` : false }, () => {
  let dir: string;
  let bundle: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'idlemesh-split-build-'));
    bundle = await makeBundle(dir);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('two concurrent calls build once (the second waits on the lock), only the two targets, and a third call is cached', { timeout: 300_000 }, async () => {
    const cacheDir = join(dir, 'cache');
    const events: BuildProgress[][] = [[], []];
    const [a, b] = await Promise.all([0, 1].map((i) => buildLlamaRpc({ bundle, cacheDir, jobs: 2, onProgress: (p) => events[i]?.push(p) })));
    assert.ok(a && b);
    assert.deepEqual([a.cached, b.cached].sort(), [false, true], 'one built, one found the build');
    const waiter = a.cached ? 0 : 1;
    assert.ok(events[waiter]?.some((e) => e.type === 'wait-lock'), 'the second waited on the lock');
    assert.ok(events[1 - waiter]?.some((e) => e.type === 'compile'), 'the builder reported progress');
    assert.equal(a.rpcServer, b.rpcServer);
    assert.ok(a.rpcServer.startsWith(join(cacheDir, 'llama-rpc', a.bundleSha256.slice(0, 16))));
    for (const bin of [a.rpcServer, a.llamaServer]) assert.equal((await run(bin)).stdout.trim(), 'stand-in');
    assert.equal(existsSync(`${a.dir}.lock`), false, 'the lock is released');
    const manifest = JSON.parse(await readFile(join(a.dir, 'build.json'), 'utf8')) as { flags: string[] };
    assert.ok(manifest.flags.includes('-DGGML_RPC=ON'));
    const c = await buildLlamaRpc({ bundle, cacheDir });
    assert.equal(c.cached, true);
    assert.equal(c.buildSeconds, a.cached ? b.buildSeconds : a.buildSeconds);
  });

  it('takes over a lock left by a dead process', { timeout: 300_000 }, async () => {
    const cacheDir = join(dir, 'cache-stale');
    const gone = spawn('true');
    await new Promise((r) => gone.on('exit', r));
    const probe = await buildLlamaRpc({ bundle, cacheDir: join(dir, 'cache-probe') }); // learn the directory name
    await mkdir(join(cacheDir, 'llama-rpc'), { recursive: true });
    await writeFile(join(cacheDir, 'llama-rpc', `${probe.bundleSha256.slice(0, 16)}.lock`), String(gone.pid));
    const r = await buildLlamaRpc({ bundle, cacheDir, lockTimeoutMs: 60_000 });
    assert.equal(r.cached, false);
    assert.ok(existsSync(r.llamaServer));
  });

  it('a failing build is IM_SPLIT_BUILD_FAILED with the compiler output, and leaves no lock or manifest', { timeout: 300_000 }, async () => {
    const broken = await makeBundle(dir, true);
    const cacheDir = join(dir, 'cache-broken');
    await assert.rejects(buildLlamaRpc({ bundle: broken, cacheDir }), (e: Error & { code?: string }) => e.code === 'IM_SPLIT_BUILD_FAILED' && /must not be built/.test(e.message));
    const [sub] = await run('ls', [join(cacheDir, 'llama-rpc')]).then((o) => o.stdout.split('\n').filter(Boolean));
    assert.ok(sub && !sub.endsWith('.lock'));
    assert.equal(existsSync(join(cacheDir, 'llama-rpc', `${sub}.lock`)), false);
    assert.equal(existsSync(join(cacheDir, 'llama-rpc', sub, 'build.json')), false);
  });
});
