// Compiles every examples/<name>/<name>.wat to a .wasm beside it with wabt.
// Runs during `npm install` (root `prepare`), so it stays offline and quick:
// a module is rebuilt only when its .wat is newer than its .wasm.
//
// Usage: node examples/build.mjs [--force] [--quiet]
// Also importable: `await buildExamples({ force: true })` returns the paths built.
import { readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const examplesDir = fileURLToPath(new URL('.', import.meta.url));

// The examples are WebAssembly 1.0 (MVP) plus mutable globals, so that every
// runtime and the fuel-metering pass accept them. wabt enables several
// post-MVP features by default; turning them off makes a stray opcode a build
// error instead of a surprise on some volunteer's machine.
const FEATURES = {
  mutable_globals: true,
  sat_float_to_int: false,
  sign_extension: false,
  simd: false,
  threads: false,
  multi_value: false,
  tail_call: false,
  bulk_memory: false,
  reference_types: false,
};

/** Lists every examples/<dir>/*.wat, sorted. */
export function listWatFiles() {
  const out = [];
  for (const entry of readdirSync(examplesDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(examplesDir, entry.name);
    for (const file of readdirSync(dir)) {
      if (file.endsWith('.wat')) out.push(join(dir, file));
    }
  }
  return out.sort();
}

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/**
 * Builds the stale examples (or all with `force`) and returns the .wasm paths written.
 * Throws an Error carrying wabt's message when a module does not compile.
 */
export async function buildExamples({ force = false, quiet = false } = {}) {
  const stale = listWatFiles().filter((wat) => force || mtimeMs(wat.replace(/\.wat$/, '.wasm')) <= mtimeMs(wat));
  if (stale.length === 0) return [];
  const wabt = await (await import('wabt')).default();
  const built = [];
  for (const wat of stale) {
    const wasmPath = wat.replace(/\.wat$/, '.wasm');
    const rel = wasmPath.slice(examplesDir.length);
    let module;
    try {
      module = wabt.parseWat(wat, readFileSync(wat, 'utf8'), FEATURES);
      module.resolveNames();
      module.validate();
      const { buffer } = module.toBinary({ write_debug_names: true });
      // Write then rename, so a concurrent build or test never reads half a file.
      const tmp = `${wasmPath}.${process.pid}.tmp`;
      writeFileSync(tmp, buffer);
      renameSync(tmp, wasmPath);
    } catch (err) {
      throw new Error(`examples/${rel.replace(/\.wasm$/, '.wat')}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      module?.destroy();
    }
    built.push(wasmPath);
    if (!quiet) console.log(`examples: built ${rel} (${statSync(wasmPath).size} bytes)`);
  }
  return built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => a !== '--force' && a !== '--quiet');
  if (unknown.length > 0) {
    console.error(`examples/build.mjs: unknown argument ${unknown[0]} (accepted: --force, --quiet)`);
    process.exit(2);
  }
  try {
    await buildExamples({ force: args.includes('--force'), quiet: args.includes('--quiet') });
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  }
}
