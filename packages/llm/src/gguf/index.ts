/**
 * GGUF, llama.cpp's model format: a reader (header, metadata, tensor infos,
 * F32/F16/BF16/Q8_0 data), a writer, random-weight llama models for tests,
 * and a file source that reads only the tensors asked for.
 */
export * from './types.js';
export { parseGgufHeader, decodeTensor, metaNumber, metaString, GGUF_MAGIC } from './reader.js';
export { writeGguf, encodeTensor, type GgufTensorInput, type GgufWriteInput } from './writer.js';
export { writeRandomLlama, randomLlamaVocabulary, RANDOM_LLAMA_TOKENS, type RandomLlamaOptions } from './random-llama.js';
export { ggufFromBytes, type GgufSource } from './source.js';
export { openGgufFile, type GgufFile } from './file.js';
export { f32ToF16Bits, f16BitsToF32, roundToF16, encodeF16, decodeF16 } from './f16.js';
