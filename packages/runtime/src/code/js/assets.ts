/**
 * Main-thread side of JS: QuickJS's wasm, compiled once per process and
 * handed to every worker, so a new interpreter costs an instantiation and
 * shares the code V8 has already compiled and optimised.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

let compiled: Promise<WebAssembly.Module> | undefined;

export function quickJsModule(): Promise<WebAssembly.Module> {
  if (compiled === undefined) {
    // Resolved from quickjs-emscripten's own location, where its variant package is installed.
    const req = createRequire(import.meta.resolve('quickjs-emscripten'));
    const p = readFile(req.resolve('@jitl/quickjs-wasmfile-release-sync/wasm')).then((bytes) => WebAssembly.compile(bytes));
    compiled = p;
    p.catch(() => {
      compiled = undefined;
    });
  }
  return compiled;
}
