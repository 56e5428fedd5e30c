export const LLM_PACKAGE = '@idlemesh/llm';
