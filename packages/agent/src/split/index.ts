/**
 * Split inference, engine `llamacpp-rpc`: real llama.cpp with its layers
 * spread over several agents.
 *
 * - build.ts: builds ggml-rpc-server and llama-server once per machine from
 *   node-llama-cpp's bundled source (cached outside the repository).
 * - tunnel.ts: the authenticated, encrypted byte-stream tunnel between two
 *   agents' node keys; llama.cpp RPC has no authentication, so it is only
 *   ever reached through this.
 * - stage.ts: one stage: an RPC server on loopback, exposed through tunnels.
 * - head.ts: the head: llama-server over the stages' tunnel endpoints,
 *   streaming completions, restarted with a replacement stage when one dies
 *   and the request replayed by token ids.
 * - mesh.ts: the agent's side of a group in the mesh: the stage, the head
 *   serving the group's requests, tunnels relayed through the coordinator.
 */
export * from './build.js';
export * from './tunnel.js';
export * from './ports.js';
export * from './stage.js';
export * from './head.js';
export * from './local-group.js';
export * from './mesh.js';
