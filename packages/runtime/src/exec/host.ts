/** The idlemesh/1 imports (module `idlemesh`). */
import type { RunState } from './state.js';

export function taskImports(current: () => RunState): Record<string, (...args: never[]) => unknown> {
  return {
    input_len: (): number => current().input.length,
    input_read: (dst: number): void => {
      const s = current();
      s.charge(s.input.length);
      s.mem('input_read', dst, s.input.length).set(s.input);
    },
    output_write: (src: number, len: number): void => {
      const s = current();
      s.charge(len);
      s.write(s.mem('output_write', src, len));
    },
  };
}
