/**
 * The seam between the client side and a stage: bytes in, bytes out. The
 * in-process transport calls a Stage directly; a remote one (the agents'
 * connections) carries the same frames and maps a lost peer to a thrown
 * error, which is what makes the session replace the stage.
 */
import { ImError } from '@idlemesh/protocol';
import type { Stage } from './stage.js';

export interface StageTransport {
  /** Sends one frame to the stage and resolves with the frame it answers (hidden states or logits). */
  forward(frame: Uint8Array): Promise<Uint8Array>;
  /** Empties the stage's KV cache. */
  reset(): Promise<void>;
  /** Frees what the transport holds (a connection); optional. */
  close?(): Promise<void>;
}

/** A stage in this process. */
export class LocalStageTransport implements StageTransport {
  private closed = false;

  constructor(readonly stage: Stage) {}

  async forward(frame: Uint8Array): Promise<Uint8Array> {
    if (this.closed) throw new ImError('IM_UNAVAILABLE', `stage [${this.stage.from}, ${this.stage.to}) is closed`);
    return this.stage.handle(frame);
  }

  async reset(): Promise<void> {
    this.stage.reset();
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
