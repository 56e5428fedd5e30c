import { ImError } from '@idlemesh/protocol';
import type { ModuleAbi, WireError } from '@idlemesh/protocol';

export { ImError };

export interface InstrumentRequest {
  id: number;
  bytes: Uint8Array;
  maxMemoryMb: number;
  maxBytes: number;
}

export type InstrumentResponse =
  | { id: number; ok: true; bytes: Uint8Array; abi: ModuleAbi; memory: { initialPages: number; maxPages: number } }
  | { id: number; ok: false; error: WireError };

export function instrumentModuleError(err: unknown): WireError {
  return new ImError('IM_INTERNAL', `instrumentation failed: ${err instanceof Error ? err.message : String(err)}`).toWire();
}
