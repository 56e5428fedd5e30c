/**
 * The `pipeline` engine: a llama forward pass in TypeScript, split into
 * stages that each hold a contiguous range of layers and their KV cache, fed
 * frame by frame by a PipelineSession that recovers failed stages by replay.
 * See docs/split-inference.md.
 */
export { Stage, DEFAULT_STAGE_CONTEXT, type StageOptions } from './stage.js';
export { PipelineSession, mergeFrames, type PipelineSessionOptions, type PipelineEvent, type GenerateOptions } from './session.js';
export { LocalStageTransport, type StageTransport } from './transport.js';
export { encodeFrame, decodeFrame, frameRows, FRAME_VERSION, FRAME_HEADER_BYTES, type Frame, type EncodeOptions } from './frame.js';
export { createKernel, wasmSimdAvailable, type MatmulKernel, type Matrix, type KernelKind, type KernelChoice } from './kernel.js';
export { llamaConfigOf, splitLayers, type LlamaConfig } from './model.js';
export { sampleToken, argmax, type SamplingOptions } from './sampling.js';
export { Rng } from './rng.js';
export { SpmTokenizer } from './tokenizer.js';
export { PipelineBackend, type PipelineBackendOptions } from './backend.js';
