/** 1 effort unit (EU) of metered WebAssembly is 10^9 fuel. */
export const FUEL_PER_EU = 1_000_000_000;

export function fuelToEu(fuel: number): number {
  return fuel / FUEL_PER_EU;
}

/** Defaults a job gets for limits it leaves out. */
export const DEFAULT_LIMITS = {
  fuel: 10_000_000_000,
  memoryMb: 64,
  timeoutMs: 30_000,
  outputBytes: 1024 * 1024,
} as const;

export const DEFAULT_MAX_ATTEMPTS = 3;
export const DEFAULT_RETRY_BACKOFF_MS = 1000;
export const WASM_PAGE_BYTES = 65536;
