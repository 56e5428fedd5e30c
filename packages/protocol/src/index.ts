/**
 * @idlemesh/protocol — wire types, schemas, signing and units. No I/O.
 *
 * Glossary
 * - coordinator: the control plane; takes jobs, leases tasks, checks results.
 * - agent / node: a machine that runs tasks. Its id is its ed25519 public key.
 * - job: what a buyer submits: one module, many inputs. Each input is a task.
 * - lease: a task handed to one node until a deadline; heartbeats extend it,
 *   expiry hands it back to the queue. `attempt` numbers the leases of a task;
 *   a result counts only for the attempt it was leased under.
 * - fuel: deterministic instruction budget charged by the instrumented
 *   module; the same on every machine. 1 EU = 1e9 fuel.
 * - credit: how many more tasks an agent is ready to hold (flow control).
 */
export * from './errors.js';
export * from './crypto.js';
export * from './schemas.js';
export * from './signing.js';
export * from './ids.js';
export * from './units.js';
export * from './openapi.js';
export * from './audit/index.js';
export * from './receipts.js';
