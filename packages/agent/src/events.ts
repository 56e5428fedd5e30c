/** What an agent reports about itself; the CLI and dashboard listen to these. */
export type AgentEvent =
  | { type: 'connected'; coordinator: string; nodeId: string }
  | { type: 'disconnected'; code: number; reason: string; retryInMs: number }
  | { type: 'paused'; reason: string }
  | { type: 'resumed' }
  | { type: 'leased'; count: number }
  | { type: 'result'; taskId: string; attempt: number; ok: boolean; fuel: number; errorCode?: string }
  | { type: 'acked'; accepted: number; duplicate: number; rejected: number }
  | { type: 'revoked'; taskIds: string[]; reason: string }
  | { type: 'released'; count: number; reason: string }
  | { type: 'error'; code: string; message: string; retryable: boolean }
  | { type: 'draining' }
  | { type: 'stopped' };

export type AgentEventType = AgentEvent['type'];

/** A tiny synchronous emitter; a throwing listener never breaks the agent. */
export class Emitter {
  private readonly listeners = new Set<(e: AgentEvent) => void>();

  on(listener: (e: AgentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(e: AgentEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's bug is its own; the agent keeps going.
      }
    }
  }
}
