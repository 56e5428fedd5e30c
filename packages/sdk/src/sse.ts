/**
 * A minimal server-sent-events reader (the WHATWG "event stream" grammar):
 * enough for the coordinator's progress stream, with no dependency, and safe
 * across arbitrary chunk boundaries (a line, or a multi-byte character, may be
 * split between two reads).
 */

export interface SseMessage {
  /** The `event:` field; `message` when the server sent none. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  id?: string;
}

export async function* parseSse(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder('utf-8');
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;

  function* takeLines(final: boolean): Generator<SseMessage> {
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buffer);
      if (m === null) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (!final && m[0] === '\r' && m.index === buffer.length - 1) break;
      const line = buffer.slice(0, m.index);
      buffer = buffer.slice(m.index + m[0].length);
      if (line === '') {
        if (data.length > 0) {
          const msg: SseMessage = { event: event || 'message', data: data.join('\n') };
          if (id !== undefined) msg.id = id;
          yield msg;
        }
        event = '';
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue; // comment / keep-alive
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
      // `retry:` and unknown fields are ignored, as the spec says.
    }
  }

  for await (const chunk of chunks) {
    buffer += decoder.decode(chunk, { stream: true });
    yield* takeLines(false);
  }
  buffer += decoder.decode();
  yield* takeLines(true);
  // A message not terminated by a blank line at end of stream is dropped (per spec).
}
