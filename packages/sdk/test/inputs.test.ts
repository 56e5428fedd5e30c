import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImError } from '@idlemesh/protocol';
import { decodeOutput, decodeUtf8, parseInputsJsonl, parseSse } from '../src/index.js';

const text = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('utf8');

void test('parseInputsJsonl: strings, base64, hex and other JSON values; blank lines skipped', () => {
  const inputs = parseInputsJsonl([
    '"hello"',
    '',
    '  {"base64":"AAEC/w=="}  ',
    '{"hex":"DEADbeef"}',
    '42',
    '{"a": 1, "base64": "AA=="}',
    '[1, "x"]',
    '"snow ❄"',
    '\r',
  ].join('\n'));
  assert.equal(inputs.length, 7);
  assert.equal(text(inputs[0]), 'hello');
  assert.deepEqual([...(inputs[1] ?? [])], [0, 1, 2, 255]);
  assert.deepEqual([...(inputs[2] ?? [])], [0xde, 0xad, 0xbe, 0xef]);
  assert.equal(text(inputs[3]), '42');
  assert.equal(text(inputs[4]), '{"a": 1, "base64": "AA=="}');
  assert.equal(text(inputs[5]), '[1, "x"]');
  assert.equal(text(inputs[6]), 'snow ❄');
});

void test('parseInputsJsonl: a bad line is IM_INPUT_INVALID with its line number', () => {
  const cases: [string, number][] = [
    ['"ok"\n\n{not json}\n', 3],
    ['"ok"\r\n{"hex":"abc"}', 2],
    ['{"base64":"@@@"}', 1],
    ['"a"\n"b"\n{"base64": 7}', 3],
  ];
  for (const [input, line] of cases) {
    assert.throws(() => parseInputsJsonl(input), (e: unknown) => {
      assert.ok(e instanceof ImError);
      assert.equal(e.code, 'IM_INPUT_INVALID');
      assert.match(e.message, new RegExp(`^line ${line}: `));
      assert.deepEqual(e.details, { line });
      return true;
    }, input);
  }
});

void test('decodeOutput: UTF-8 text as is, anything else as base64:…', () => {
  assert.equal(decodeOutput(Buffer.from('héllo').toString('base64')), 'héllo');
  assert.equal(decodeOutput('//79'), 'base64://79');
  assert.equal(decodeUtf8('//79'), null);
  assert.equal(decodeOutput(''), '');
});

void test('parseSse yields the same messages for every way of splitting the bytes', async () => {
  const src = Buffer.from('event: a\r\ndata: x1\r\ndata:  x2\r\nid: 7\r\n\r\n: c\n\ndata: ü✓\rdata\r\r\nevent: b\ndata: tail-without-blank-line\n');
  const expected = [
    { event: 'a', data: 'x1\n x2', id: '7' },
    { event: 'message', data: 'ü✓\n', id: '7' },
  ];
  for (let cut = 1; cut < src.length; cut++) {
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield src.subarray(0, cut);
      yield src.subarray(cut);
    }
    const got = [];
    for await (const m of parseSse(chunks())) got.push(m);
    assert.deepEqual(got, expected, `split at ${cut}`);
  }
});
