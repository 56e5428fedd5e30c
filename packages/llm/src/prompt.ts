/**
 * Turning OpenAI chat messages into what a model reads.
 *
 * Models whose GGUF carries a chat template get it (through node-llama-cpp's
 * chat wrappers, see toChatHistory). Models without one (base models, the
 * test fixture) get the plain format below: one line per message, prefixed
 * with its role, ending with `Assistant:` for the model to continue, and the
 * next role prefix as a stop string. Tools are not offered in the plain
 * format; earlier tool calls and results are still shown, as text.
 */
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, GbnfJsonSchema } from 'node-llama-cpp';
import { contentText, type ChatMessage, type Tool, type ToolChoice } from './openai.js';

const ROLE_PREFIX: Record<ChatMessage['role'], string> = { system: 'System', developer: 'System', user: 'User', assistant: 'Assistant', tool: 'Tool' };

/** Where a plain-format answer ends: the model starting the next turn. */
export const PLAIN_STOPS: readonly string[] = ['\nUser:', '\nSystem:', '\nTool:', '\nAssistant:'];

/**
 * The plain chat format:
 *
 *     System: You are terse.
 *     User: Hi
 *     Assistant: Hello.
 *     User: Bye
 *     Assistant:
 */
export function renderPlainChat(messages: readonly ChatMessage[]): string {
  const lines = messages.map((m) => {
    let text = contentText(m.content);
    if (m.role === 'assistant') {
      for (const call of m.tool_calls ?? []) text += `${text ? '\n' : ''}${call.function.name}(${call.function.arguments})`;
    }
    return `${ROLE_PREFIX[m.role]}: ${text}`;
  });
  return `${lines.join('\n')}\nAssistant:`;
}

/**
 * OpenAI messages as node-llama-cpp's chat history. A tool result becomes
 * the `result` of the call it answers (by tool_call_id), which is how the
 * chat wrappers render function calling; a result with no such call is shown
 * to the model as a user message.
 */
export function toChatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  const calls = new Map<string, ChatModelFunctionCall>();
  for (const m of messages) {
    switch (m.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text: contentText(m.content) });
        break;
      case 'user':
        history.push({ type: 'user', text: contentText(m.content) });
        break;
      case 'assistant': {
        const response: Array<string | ChatModelFunctionCall> = [];
        const text = contentText(m.content);
        if (text) response.push(text);
        for (const c of m.tool_calls ?? []) {
          const call: ChatModelFunctionCall = { type: 'functionCall', name: c.function.name, params: parseArguments(c.function.arguments), result: '' };
          calls.set(c.id, call);
          response.push(call);
        }
        history.push({ type: 'model', response });
        break;
      }
      case 'tool': {
        const call = calls.get(m.tool_call_id);
        if (call) call.result = contentText(m.content);
        else history.push({ type: 'user', text: `Tool result (${m.tool_call_id}): ${contentText(m.content)}` });
        break;
      }
    }
  }
  return history;
}

function parseArguments(args: string): unknown {
  try {
    return JSON.parse(args) as unknown;
  } catch {
    return args;
  }
}

/**
 * The tools a request offers, as node-llama-cpp functions: none for
 * `tool_choice: "none"`, only the named one for a named choice. `required`
 * cannot be enforced by node-llama-cpp and is treated as `auto`.
 */
export function toFunctions(tools: readonly Tool[] | null | undefined, choice: ToolChoice | null | undefined): ChatModelFunctions | undefined {
  if (!tools || tools.length === 0 || choice === 'none') return undefined;
  const only = typeof choice === 'object' && choice !== null ? choice.function.name : undefined;
  const fns: Record<string, { description?: string; params?: GbnfJsonSchema }> = {};
  for (const t of tools) {
    if (only !== undefined && t.function.name !== only) continue;
    fns[t.function.name] = {
      ...(t.function.description === undefined ? {} : { description: t.function.description }),
      // The JSON Schema subset node-llama-cpp turns into a grammar; what it cannot express fails the request.
      ...(t.function.parameters === undefined ? {} : { params: t.function.parameters as GbnfJsonSchema }),
    };
  }
  return Object.keys(fns).length === 0 ? undefined : fns;
}
