/**
 * Builds the web app into dist/, which the coordinator serves at `/`.
 * `npm run dev -w @idlemesh/web` proxies the API to IDLEMESH_COORDINATOR
 * (default http://localhost:7070).
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';
import { RUNTIME_VERSION } from '@idlemesh/runtime';

const coordinator = process.env.IDLEMESH_COORDINATOR ?? 'http://localhost:7070';

export default defineConfig({
  plugins: [preact()],
  resolve: {
    alias: {
      // Only the task runner of @idlemesh/runtime (pure WebAssembly, no node:*),
      // compiled by tsc exactly as the Node agent loads it: same code, same fuel.
      '@idlemesh/runtime/exec': fileURLToPath(new URL('../runtime/dist/src/exec/index.js', import.meta.url)),
      // The calibration kernel the Node agent measures its speed with.
      '@idlemesh/runtime/kernel': fileURLToPath(new URL('../runtime/dist/src/calibrate/kernel.generated.js', import.meta.url)),
    },
  },
  define: {
    // Named in every receipt; taken from the runtime package at build time so it cannot drift.
    __RUNTIME_VERSION__: JSON.stringify(RUNTIME_VERSION),
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 400,
  },
  worker: { format: 'es' },
  server: {
    proxy: {
      '/v1': { target: coordinator, ws: true, changeOrigin: false },
      '/healthz': coordinator,
    },
  },
});
