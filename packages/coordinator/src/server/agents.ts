import type { WebSocket } from 'ws';
import {
  AgentMessage,
  ImError,
  MAX_CLOCK_SKEW_MS,
  PROTOCOL_VERSION,
  base64ToBytes,
  errorFrom,
  parseTaskId,
  randomHex,
  taskId,
  verifyMessage,
} from '@idlemesh/protocol';
import type { Capabilities, ServerMessage, SignedMessage } from '@idlemesh/protocol';
import type { AgentSession, Core } from '../core.js';
import { timed } from '../metrics.js';
import { isRetryableTaskError } from '../store/index.js';
import type { Outcome } from '../store/index.js';

const AUTH_TIMEOUT_MS = 10_000;
/** How long after the welcome the agent's `holding` list is expected. */
const HOLDING_WAIT_MS = 60_000;
/**
 * Acks wait this long for a lease to ride along with (the agent needs them
 * only to forget results the store already holds): one wake-up of the agent
 * per job instead of two when work flows.
 */
const ACK_DELAY_MS = 20;

/**
 * One agent's WebSocket: challenge → signed auth → leases, results,
 * heartbeats. Anything malformed is answered with an `error` message and the
 * connection carries on, except before authentication, where it is closed.
 */
export function handleAgentSocket(core: Core, socket: WebSocket, remote: string): void {
  const challenge = randomHex(16);
  let session: (AgentSession & { closed: boolean }) | undefined;
  /** Why the agent last said it paused: kept so a capabilities change does not forget it. */
  let pauseReason: string | undefined;
  /**
   * Leases sent on this connection before the agent's `holding` was handled:
   * the agent listed what it held when it was welcomed, so these are not in
   * its list, and must not be taken back as stale (an inference request
   * leased in that moment used to be lost).
   */
  let sentBeforeHolding: Set<string> | undefined = new Set();
  // Messages are handled one at a time, in order, so a results batch is
  // committed before the credit that follows it is spent.
  let chain: Promise<void> = Promise.resolve();

  const send = (msg: ServerMessage): void => {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(msg));
  };
  let acks: ServerMessage[] = [];
  let ackTimer: NodeJS.Timeout | undefined;
  const flushAcks = (): void => {
    if (ackTimer !== undefined) clearTimeout(ackTimer);
    ackTimer = undefined;
    const out = acks;
    acks = [];
    for (const a of out) send(a);
  };
  const queueAck = (ack: ServerMessage): void => {
    acks.push(ack);
    ackTimer ??= setTimeout(flushAcks, ACK_DELAY_MS);
  };
  /** Pending acks and `msg` in one write. */
  const sendWithAcks = (msg: ServerMessage): void => {
    const raw = acks.length > 0 ? (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket : undefined;
    raw?.cork();
    try {
      flushAcks();
      send(msg);
    } finally {
      raw?.uncork();
    }
  };
  const refuse = (err: ImError, ref?: string): void => {
    core.metrics.protocolErrors.inc({ code: err.code });
    send({ type: 'error', error: err.toWire(), ...(ref !== undefined ? { ref } : {}) });
  };

  const authTimer = setTimeout(() => {
    if (!session) {
      refuse(new ImError('IM_UNAUTHORIZED', 'no auth message within 10 s'));
      socket.close(1008, 'auth timeout');
    }
  }, AUTH_TIMEOUT_MS);

  send({ type: 'hello', v: PROTOCOL_VERSION, challenge, serverTime: core.now(), coordinatorId: core.opts.coordinatorId });

  socket.on('message', (data, isBinary) => {
    chain = chain.then(() => onMessage(data as Buffer, isBinary)).catch((err: unknown) => {
      if (err instanceof ImError) refuse(err);
      else {
        core.log.error({ err, node: session?.nodeId }, 'agent message failed');
        refuse(new ImError('IM_INTERNAL'));
      }
    });
  });

  socket.on('close', () => {
    clearTimeout(authTimer);
    if (ackTimer !== undefined) clearTimeout(ackTimer);
    chain = chain.then(() => onClose()).catch((err: unknown) => core.log.error({ err }, 'agent close failed'));
  });
  socket.on('error', (err) => core.log.warn({ err: err.message, remote }, 'agent socket error'));

  async function onMessage(data: Buffer, isBinary: boolean): Promise<void> {
    let raw: unknown;
    try {
      if (isBinary) throw new Error('binary frames are not used by protocol v1');
      raw = JSON.parse(data.toString('utf8'));
    } catch (err) {
      throw new ImError('IM_BAD_REQUEST', `message is not JSON: ${(err as Error).message}`);
    }
    const parsed = AgentMessage.safeParse(raw);
    if (!parsed.success) {
      const unknown = parsed.error.issues.some((i) => i.code === 'unrecognized_keys');
      throw new ImError(unknown ? 'IM_UNKNOWN_FIELD' : 'IM_VALIDATION', `invalid ${typeof raw === 'object' && raw && 'type' in raw ? String((raw as { type: unknown }).type) : ''} message`, {
        details: parsed.error.issues.slice(0, 10),
      });
    }
    const msg = parsed.data;
    core.metrics.wsMessages.inc({ type: msg.type });

    if (!session) {
      if (msg.type !== 'auth') {
        refuse(new ImError('IM_UNAUTHORIZED', 'authenticate first'));
        socket.close(1008, 'unauthenticated');
        return;
      }
      try {
        await authenticate(msg);
      } catch (err) {
        if (err instanceof ImError) refuse(err);
        socket.close(1008, 'auth failed');
        throw err instanceof ImError ? new ImError(err.code, err.message) : err;
      }
      return;
    }

    switch (msg.type) {
      case 'auth':
        throw new ImError('IM_CONFLICT', 'already authenticated');
      case 'credit':
        session.credit += msg.n;
        core.kick();
        return;
      case 'heartbeat':
        await heartbeat(msg.state, msg.reason);
        return;
      case 'holding': {
        const held = new Set([...msg.tasks.map((t) => `${t.taskId}#${t.attempt}`), ...(sentBeforeHolding ?? [])]);
        sentBeforeHolding = undefined;
        const stale = (await core.store.nodeLeases(session.nodeId)).filter((t) => !held.has(`${taskId(t.jobId, t.index)}#${t.attempt}`));
        if (stale.length === 0) return;
        const r = await core.store.releaseTasks(session.nodeId, stale, core.now());
        core.metrics.leasesReleased.inc(r.released);
        core.log.info({ node: short(session.nodeId), released: r.released }, 'leases the agent no longer holds handed back');
        core.notifyJobs(r.jobs);
        core.announceWork();
        return;
      }
      case 'release': {
        const refs = msg.tasks.map((t) => ({ ...parseTaskId(t.taskId), attempt: t.attempt }));
        const r = await core.store.releaseTasks(session.nodeId, refs, core.now());
        core.metrics.leasesReleased.inc(r.released);
        core.log.info({ node: short(session.nodeId), released: r.released, reason: msg.reason }, 'leases handed back');
        core.notifyJobs(r.jobs);
        core.announceWork();
        return;
      }
      case 'slots':
        await slots(msg.maxTasks);
        return;
      case 'stream':
        core.inference.onStream(session.nodeId, msg);
        return;
      case 'stage-frame':
        core.inference.split.onFrame(session, msg);
        return;
      case 'stage-reply':
        core.inference.split.onReply(session, msg);
        return;
      case 'tunnel-open':
        core.inference.split.onTunnelOpen(session, msg);
        return;
      case 'tunnel-data':
        core.inference.split.onTunnelData(session, msg);
        return;
      case 'tunnel-close':
        core.inference.split.onTunnelClose(session, msg);
        return;
      case 'results':
        try {
          await results(msg);
        } catch (err) {
          // Answered with the batch's nonce, so the agent knows which batch was refused.
          if (!(err instanceof ImError)) throw err;
          refuse(err, msg.nonce);
        }
        return;
    }
  }

  async function checkSigned(msg: SignedMessage): Promise<void> {
    const now = core.now();
    await verifyMessage(msg, now, session?.nodeId);
    // Auth nonces are kept in the store, across restarts and coordinators. A
    // replayed results batch could change nothing (each lease accepts one
    // result), so its nonces are kept in memory: no extra commit per batch.
    const fresh = msg.type === 'auth'
      ? await core.store.useNonce(msg.nodeId, msg.nonce, now + 2 * MAX_CLOCK_SKEW_MS)
      : core.nonces.use(`${msg.nodeId}:${msg.nonce}`, now + 2 * MAX_CLOCK_SKEW_MS, now);
    if (!fresh) throw new ImError('IM_REPLAYED', undefined, { details: { nonce: msg.nonce } });
  }

  async function authenticate(msg: Extract<SignedMessage, { type: 'auth' }>): Promise<void> {
    if (msg.body.v !== PROTOCOL_VERSION) throw new ImError('IM_PROTOCOL_VERSION', `coordinator speaks protocol v${PROTOCOL_VERSION}, agent v${msg.body.v}`);
    if (msg.body.challenge !== challenge) throw new ImError('IM_REPLAYED', 'auth does not answer this connection\'s challenge');
    await checkSigned(msg);
    await core.admitNode(msg.nodeId, remote);
    clearTimeout(authTimer);
    const caps: Capabilities = msg.body.capabilities;
    const now = core.now();
    // The challenge is unique per connection: it names this session of the node.
    await core.store.upsertNode(msg.nodeId, caps, now, challenge);
    await core.store.extendLeases(msg.nodeId, now, core.opts.leaseMs);
    const previous = core.sessions.get(msg.nodeId);
    const welcomedAt = Date.now();
    const sendTracked = (m: ServerMessage): void => {
      if (m.type === 'lease' && sentBeforeHolding) {
        // An agent that never says what it holds (older, or scripted) is not tracked for long.
        if (Date.now() - welcomedAt > HOLDING_WAIT_MS) sentBeforeHolding = undefined;
        else for (const t of m.tasks) sentBeforeHolding.add(`${t.taskId}#${t.attempt}`);
      }
      sendWithAcks(m);
    };
    session = { nodeId: msg.nodeId, capabilities: caps, credit: 0, state: 'active', remote, send: sendTracked, closed: false };
    // The welcome goes out in the same turn the session becomes visible: nothing (a lease, a split
    // assignment) can reach the agent before it, which it would not take.
    core.sessions.set(msg.nodeId, session);
    send({ type: 'welcome', nodeId: msg.nodeId, leaseMs: core.opts.leaseMs, heartbeatMs: core.opts.heartbeatMs, serverTime: now });
    // A reconnect replaces the old socket; the node's leases stay valid.
    if (previous) core.log.info({ node: short(msg.nodeId) }, 'agent reconnected, replacing old connection');
    core.metrics.agentsConnected.set(core.sessions.size);
    core.log.info({ node: short(msg.nodeId), remote, cores: caps.cores, maxTasks: caps.maxTasks, name: caps.name }, 'agent connected');
  }

  async function heartbeat(state: AgentSession['state'], reason: string | undefined): Promise<void> {
    if (!session) return;
    const now = core.now();
    await core.store.extendLeases(session.nodeId, now, core.opts.leaseMs);
    pauseReason = state === 'active' ? undefined : reason;
    if (state !== session.state) {
      core.log.info({ node: short(session.nodeId), from: session.state, to: state, reason }, 'agent state');
      session.state = state;
      if (state !== 'active') session.credit = 0;
      await core.store.setNodeState(session.nodeId, state === 'active' ? 'online' : state, reason, now);
      if (state === 'active') core.kick();
    }
  }

  /**
   * The agent runs a different number of tasks at once (a browser node whose
   * owner moved the CPU-share slider): the node's capabilities follow, and its
   * credit starts again from zero, so it is never leased more than the agent
   * grants for its new window.
   */
  async function slots(maxTasks: number): Promise<void> {
    if (!session) return;
    const from = session.capabilities.maxTasks;
    session.capabilities = { ...session.capabilities, maxTasks };
    session.credit = 0;
    const now = core.now();
    await core.store.upsertNode(session.nodeId, session.capabilities, now, challenge);
    // upsertNode marks the node online: a paused or draining one stays as it said.
    if (session.state !== 'active') await core.store.setNodeState(session.nodeId, session.state, pauseReason, now, challenge);
    core.log.info({ node: short(session.nodeId), from, to: maxTasks }, 'agent slots changed');
    core.kick();
  }

  async function results(msg: Extract<SignedMessage, { type: 'results' }>): Promise<void> {
    if (!session) return;
    await timed(core.metrics, 'signature', () => checkSigned(msg));
    // The signed head must be the tree of these receipts (else IM_RECEIPT_MISMATCH); the batch is kept once with the results it brings.
    const receipts = await timed(core.metrics, 'receipts', () => core.receipts.batch(msg, core.now()));
    const outcomes: Outcome[] = msg.results.map((r, i) => {
      const { jobId, index } = parseTaskId(r.taskId);
      const o: Outcome = { jobId, index, attempt: r.attempt, ok: r.ok, fuel: r.fuel, inputHash: r.inputHash, receiptIndex: i };
      if (r.ok) o.output = base64ToBytes(r.output ?? '');
      else {
        const code = r.error?.code ?? 'IM_AGENT_ERROR';
        // One rule for what may run again: the store's.
        o.error = { code, message: r.error?.message ?? errorFrom('IM_AGENT_ERROR').message, retryable: isRetryableTaskError(code) };
      }
      return o;
    });
    // An inference lease sent ahead of its commit: its result waits for the commit.
    const stored = core.inference.persisted(msg.results.map((r) => r.taskId));
    if (stored) await stored;
    core.inference.splitCharges(session.nodeId, outcomes);
    // Results of replicated jobs may be held for verification (the ack does not say: the agent cannot tell).
    await core.verifier.plan(session.nodeId, outcomes);
    const placement = outcomes.some((o) => o.replicas !== undefined) ? await core.placement(session.nodeId) : undefined;
    const nodeId = session.nodeId;
    const r = await timed(core.metrics, 'results', () => core.store.completeTasks(nodeId, outcomes, core.now(), receipts, placement));
    core.metrics.resultBatch.observe(outcomes.length);
    for (const s of r.statuses) core.metrics.taskOutcomes.inc({ status: s });
    const ack: ServerMessage = {
      type: 'ack',
      batch: msg.nonce,
      results: msg.results.map((o, i) => {
        const status = r.statuses[i] ?? 'rejected';
        return status === 'rejected'
          ? { taskId: o.taskId, attempt: o.attempt, status, error: errorFrom('IM_LEASE_LOST') }
          : { taskId: o.taskId, attempt: o.attempt, status };
      }),
    };
    // Buyers waiting on these jobs hear first; the agent's ack follows with
    // its next lease, or shortly (its results are committed either way).
    core.notifyJobs(r.jobs);
    queueAck(ack);
    core.inference.onResults(session.nodeId, outcomes, r.statuses);
    core.issuance.probes.onResults(session.nodeId, outcomes, r.statuses);
    core.issuance.outcomes(session.nodeId, outcomes.filter((_, i) => r.statuses[i] === 'accepted').map((o) => ({ ok: o.ok, retryable: o.error?.retryable === true })), core.now());
    void core.referee.consider(session.nodeId, outcomes, r.statuses).catch((err: unknown) => core.log.error({ err }, 'referee draw failed'));
    if (r.verify !== undefined && r.verify.length > 0) core.verifier.consider(r.verify);
    // A failure may have put a task back in the queue.
    if (outcomes.some((o) => !o.ok)) core.announceWork();
    else core.kick();
  }

  async function onClose(): Promise<void> {
    if (!session || core.sessions.get(session.nodeId) !== session) return;
    core.sessions.delete(session.nodeId);
    core.metrics.agentsConnected.set(core.sessions.size);
    const now = core.now();
    await core.store.setNodeState(session.nodeId, 'offline', undefined, now, challenge);
    if (core.isClosing()) return;
    // The agent is gone: what it held goes back to the queue now rather than at lease expiry.
    const r = await core.store.failNodeLeases(session.nodeId, now, errorFrom('IM_LEASE_EXPIRED', 'the agent disconnected while holding the lease'), challenge);
    core.inference.nodeGone(session.nodeId);
    core.issuance.faults(session.nodeId, r.requeued + r.failed, now);
    core.log.info({ node: short(session.nodeId), requeued: r.requeued, failed: r.failed }, 'agent disconnected');
    if (r.requeued + r.failed > 0) {
      core.metrics.leasesExpired.inc(r.requeued + r.failed);
      core.notifyJobs(r.jobs);
      core.announceWork();
    }
  }
}

function short(id: string): string {
  return id.slice(0, 12);
}
