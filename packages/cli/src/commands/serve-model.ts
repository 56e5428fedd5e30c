import { Option, type Command } from 'commander';
import { apiKey, defined, intArg } from '../options.js';
import { asImError, note, outJson } from '../output.js';
import { onShutdown } from '../shutdown.js';

interface ServeModelFlags {
  port?: number;
  host?: string;
  name?: string;
  gpu?: 'auto' | 'off';
  threads?: number;
  contextSize?: number;
  chatFormat?: string;
  maxQueue?: number;
  json?: boolean;
}

export function registerServeModel(program: Command): void {
  program
    .command('serve-model')
    .description('serve a GGUF model on an OpenAI-compatible API with llama.cpp: /v1/models, /v1/chat/completions, /v1/completions (Ctrl-C stops it)')
    .argument('<path.gguf>', 'the model file')
    .option('--port <port>', 'port to listen on, 0 for any (default 8080)', intArg(0, 65535))
    .option('--host <host>', 'interface to listen on (default 127.0.0.1)')
    .option('--name <id>', 'the model id clients send (default: the file name without .gguf)')
    .addOption(new Option('--gpu <mode>', 'auto: offload to a GPU when one is found, as many layers as fit in free VRAM; off: CPU only (default auto)').choices(['auto', 'off']))
    .option('--threads <n>', 'CPU threads (default: about one per billion parameters, at most the math cores)', intArg(1, 1024))
    .option('--context-size <tokens>', 'tokens of prompt + answer per request (default: the model\'s training context, at most 4096)', intArg(16, 10_000_000))
    .option('--chat-format <format>', "auto (the GGUF's chat template, else the plain 'User: … Assistant:' format), plain, or a node-llama-cpp wrapper such as chatML or llama3.1")
    .option('--max-queue <n>', 'requests waiting for the model beyond the one running; more get 429 with Retry-After (default 16)', intArg(0, 100_000))
    .option('--json', 'print {"type":"ready","url":…,"models":[…]} as one JSON line once listening')
    .addHelpText('after', `
With --api-key (or IDLEMESH_API_KEY), clients must send "Authorization: Bearer <key>".
Example:
  idlemesh serve-model qwen2.5-coder-1.5b-q4_k_m.gguf --port 8080
  curl http://127.0.0.1:8080/v1/chat/completions -d '{"model":"qwen2.5-coder-1.5b-q4_k_m","messages":[{"role":"user","content":"hi"}]}'
Docs: docs/llm.md`)
    .action(async (path: string, flags: ServeModelFlags, cmd: Command) => {
      const { LlamaCppBackend, createOpenAiServer } = await import('@idlemesh/llm');
      const key = apiKey(cmd);
      const backend = await LlamaCppBackend.load({
        models: [{ path, ...defined({ name: flags.name, chatFormat: flags.chatFormat }) }],
        gpu: flags.gpu === 'off' ? false : 'auto',
        ...defined({ threads: flags.threads, contextSize: flags.contextSize }),
      });
      let server: Awaited<ReturnType<typeof createOpenAiServer>>;
      try {
        server = await createOpenAiServer(backend, {
          ...defined({ host: flags.host, port: flags.port, apiKey: key, maxQueue: flags.maxQueue }),
          // The client already got an OpenAI-shaped 500; the operator sees why.
          onError: (err) => {
            const e = asImError(err);
            note(`error ${e.code}: ${e.message}`);
          },
        });
      } catch (err) {
        await backend.close();
        throw err;
      }
      const models = await backend.models();
      if (flags.json) await outJson({ type: 'ready', url: server.url, models });
      else {
        for (const m of models) note(`model ${m.id}: ${m.device}, context ${m.contextSize} tokens, size class ${m.sizeClass}, sha256 ${m.hash}`);
        note(`OpenAI-compatible API on ${server.url} (${key === undefined ? 'no API key: open to anyone who reaches this port' : 'Bearer API key required'})`);
      }
      onShutdown(async () => {
        note('stopping: aborting requests in flight…');
        await server.close();
        await backend.close();
      });
    });
}
