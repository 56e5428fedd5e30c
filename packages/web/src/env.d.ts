/** RUNTIME_VERSION of @idlemesh/runtime, substituted at build time (vite.config.ts). */
declare const __RUNTIME_VERSION__: string;
