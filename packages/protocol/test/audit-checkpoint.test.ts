import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  addNoteSignatures,
  cosign,
  cosignatureNoteVerifier,
  ed25519NoteVerifier,
  formatCheckpoint,
  openCheckpoint,
  parseCheckpoint,
  signNote,
  toHex,
} from '../src/index.js';
import type { Checkpoint } from '../src/index.js';

const key = (name: string): { name: string; privateKey32: Uint8Array; publicKey: Uint8Array } => {
  const privateKey32 = ed25519.utils.randomSecretKey();
  return { name, privateKey32, publicKey: ed25519.getPublicKey(privateKey32) };
};

// The c2sp.org/tlog-checkpoint example body.
const SPEC_BODY = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';

describe('checkpoint bodies (c2sp.org/tlog-checkpoint)', () => {
  it('parses the spec example and formats it back byte for byte', () => {
    const cp = parseCheckpoint(SPEC_BODY);
    assert.equal(cp.origin, 'example.com/behind-the-sofa');
    assert.equal(cp.size, 20852163);
    assert.equal(toHex(cp.rootHash), '0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62');
    assert.equal(cp.extensions, undefined);
    assert.equal(formatCheckpoint(cp), SPEC_BODY);
  });

  it('round-trips any valid checkpoint', () => {
    const line = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/[\u0000-\u001f]/.test(s) && !/\p{Surrogate}/u.test(s));
    fc.assert(
      fc.property(
        line,
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(line, { maxLength: 3 }),
        (origin, size, rootHash, ext) => {
          const cp: Checkpoint = ext.length > 0 ? { origin, size, rootHash, extensions: ext } : { origin, size, rootHash };
          const text = formatCheckpoint(cp);
          assert.deepEqual(parseCheckpoint(text), cp);
          assert.equal(formatCheckpoint(parseCheckpoint(text)), text);
        },
      ),
    );
  });

  it('refuses every non-canonical or broken body', () => {
    const root = 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=';
    const bad = [
      'example.com/log\n5\n' + root, // no final newline
      'example.com/log\n5\n', // two lines
      '\n5\n' + root + '\n', // empty origin
      'example.com/log\n05\n' + root + '\n', // leading zero
      'example.com/log\n+5\n' + root + '\n',
      'example.com/log\n-1\n' + root + '\n',
      'example.com/log\n5.0\n' + root + '\n',
      'example.com/log\n 5\n' + root + '\n',
      'example.com/log\n9007199254740993\n' + root + '\n', // past 2^53
      'example.com/log\n5\n' + root.slice(0, -1) + '\n', // missing padding
      'example.com/log\n5\nCsUYapGGPo4dkMgIAUqom_Xajj7h2fB2MPA3j2jxq2I=\n', // URL alphabet
      'example.com/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n', // non-zero trailing bits
      'example.com/log\n5\nAAAA\n', // 3-byte root
      'example.com/log\n5\n' + root + '\n\n', // empty extension line
      'example.com/log\n5\n' + root + '\next\r\n', // control character
      'example.com/log\r\n5\n' + root + '\n',
    ];
    for (const text of bad) assert.throws(() => parseCheckpoint(text), { code: 'IM_VALIDATION' }, JSON.stringify(text));
    const rootHash = new Uint8Array(32);
    assert.throws(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash }), { code: 'IM_VALIDATION' });
    assert.throws(() => formatCheckpoint({ origin: 'a', size: -1, rootHash }), { code: 'IM_VALIDATION' });
    assert.throws(() => formatCheckpoint({ origin: 'a', size: 1.5, rootHash }), { code: 'IM_VALIDATION' });
    assert.throws(() => formatCheckpoint({ origin: 'a', size: 1, rootHash: new Uint8Array(31) }), { code: 'IM_VALIDATION' });
    assert.throws(() => formatCheckpoint({ origin: 'a', size: 1, rootHash, extensions: [''] }), { code: 'IM_VALIDATION' });
  });
});

describe('openCheckpoint', () => {
  const log = key('audit.example.com/log');
  const w1 = key('w1.example.org');
  const w2 = key('w2.example.org');
  const logV = ed25519NoteVerifier(log.name, log.publicKey);
  const w1V = cosignatureNoteVerifier(w1.name, w1.publicKey);
  const w2V = cosignatureNoteVerifier(w2.name, w2.publicKey);
  const body = formatCheckpoint({ origin: log.name, size: 10, rootHash: new Uint8Array(32).fill(1) });
  const note = signNote(body, log);

  it('accepts a checkpoint signed by the log and cosigned by a quorum, reporting witness times', () => {
    const witnessed = addNoteSignatures(note, [cosign(body, w1, 1_700_000_001), cosign(body, w2, 1_700_000_002)]);
    const opened = openCheckpoint(witnessed, { log: logV, witnesses: [w1V, w2V], quorum: 2, origin: log.name });
    assert.equal(opened.checkpoint.size, 10);
    assert.deepEqual(opened.witnessed, [
      { name: w1.name, keyId: w1V.keyId, timeSeconds: 1_700_000_001 },
      { name: w2.name, keyId: w2V.keyId, timeSeconds: 1_700_000_002 },
    ]);
  });

  it('refuses a missing log signature, a missing quorum, a failed known signature, or another origin', () => {
    const onlyWitness = `${body}\n${cosign(body, w1, 1)}`;
    assert.throws(() => openCheckpoint(onlyWitness, { log: logV, witnesses: [w1V] }), { code: 'IM_BAD_SIGNATURE' });
    assert.throws(() => openCheckpoint(note, { log: logV, witnesses: [w1V], quorum: 1 }), { code: 'IM_BAD_SIGNATURE' });
    // a cosignature of another checkpoint pasted onto this one: a known key whose signature fails
    const other = formatCheckpoint({ origin: log.name, size: 11, rootHash: new Uint8Array(32).fill(1) });
    const pasted = addNoteSignatures(note, [cosign(other, w1, 1)]);
    assert.throws(() => openCheckpoint(pasted, { log: logV, witnesses: [w1V] }), { code: 'IM_BAD_SIGNATURE' });
    assert.throws(() => openCheckpoint(note, { log: logV, origin: 'elsewhere' }), { code: 'IM_VALIDATION' });
    assert.throws(() => openCheckpoint(signNote('not a checkpoint\n', log), { log: logV }), { code: 'IM_VALIDATION' });
    // an unknown witness does not count, and does not fail the note
    const stranger = key('w3.example.org');
    const withStranger = addNoteSignatures(note, [cosign(body, stranger, 5)]);
    assert.deepEqual(openCheckpoint(withStranger, { log: logV, witnesses: [w1V] }).witnessed, []);
  });
});
