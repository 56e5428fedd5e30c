/**
 * The llama.cpp processes this process started. They hold ports and memory
 * and, unlike our sockets, outlive us: when this process exits (normally or
 * on an uncaught error) they are killed with it. (A SIGKILL of this process
 * cannot be caught; the stages' tunnels then close, and a head's llama-server
 * is left to the operating system.)
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

/** Registers a child to kill on exit; it leaves the set by itself when it exits. */
export function ownChild(child: ChildProcess): void {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  child.on('exit', () => live.delete(child));
}
