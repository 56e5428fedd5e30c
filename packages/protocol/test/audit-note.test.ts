import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  SIG_TYPE_COSIGNATURE_V1,
  addNoteSignatures,
  base64ToBytes,
  cosign,
  cosignatureNoteVerifier,
  ed25519NoteVerifier,
  formatCheckpoint,
  noteKeyId,
  openNote,
  parseVerifierKey,
  signNote,
  verifierKey,
  verifyCosignature,
} from '../src/index.js';
import type { NoteSigner } from '../src/index.js';

// golang.org/x/mod/sumdb/note's test key and note (note_test.go, TestSign / TestOpen).
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

// Go's private key string is base64(0x01 || 32-byte Ed25519 seed) after the fourth '+'.
const peterSigner: NoteSigner = { name: 'PeterNeumann', privateKey32: base64ToBytes(PETER_SKEY.split('+').slice(4).join('+')).subarray(1) };

// A checkpoint from the transparency-dev staging CT log, signed by the log
// (Ed25519, plus an RFC 6962 signature of type 0x05) and cosigned by witnesses,
// among them remora.n621.de with a type 0x04 cosignature/v1 key.
const ARCHE_BODY = 'arche2025h1.staging.ct.transparency.dev\n1432088532\nU7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n';
const ARCHE_NOTE =
  ARCHE_BODY +
  '\n' +
  '— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n' +
  '— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n' +
  '— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n' +
  '— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n' +
  '— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n' +
  '— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n';
const ARCHE_VKEY = 'arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f';
const REMORA_VKEY = 'remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';

const newSigner = (name: string): NoteSigner & { publicKey: Uint8Array } => {
  const privateKey32 = ed25519.utils.randomSecretKey();
  return { name, privateKey32, publicKey: ed25519.getPublicKey(privateKey32) };
};
const tamperLine = (line: string): string => {
  const [dash, name, b64] = line.trimEnd().split(' ') as [string, string, string];
  const bytes = base64ToBytes(b64);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1;
  return `${dash} ${name} ${Buffer.from(bytes).toString('base64')}\n`;
};

describe('signed notes: Go sumdb/note test vectors', () => {
  it('computes the key ID and verifier key of the published key', () => {
    const v = parseVerifierKey(PETER_VKEY);
    assert.equal(v.keyId, 0xc74f20a3);
    assert.equal(noteKeyId('PeterNeumann', v.publicKey), 0xc74f20a3);
    assert.equal(verifierKey('PeterNeumann', ed25519.getPublicKey(peterSigner.privateKey32)), PETER_VKEY);
    // spec examples with a '+' inside the base64, and a type 0x04 key
    assert.equal(parseVerifierKey('TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6').keyId, 0x7997405c);
    const remora = parseVerifierKey(REMORA_VKEY);
    assert.equal(remora.type, SIG_TYPE_COSIGNATURE_V1);
    assert.equal(verifierKey('remora.n621.de', remora.publicKey, SIG_TYPE_COSIGNATURE_V1), REMORA_VKEY);
  });

  it('refuses every truncation and every one-character change of a verifier key', () => {
    for (let i = 0; i < PETER_VKEY.length; i++) {
      for (let j = i + 1; j <= PETER_VKEY.length; j++) {
        if (i === 0 && j === PETER_VKEY.length) continue;
        assert.throws(() => parseVerifierKey(PETER_VKEY.slice(i, j)), { code: 'IM_VALIDATION' }, PETER_VKEY.slice(i, j));
      }
    }
    for (let i = 0; i < PETER_VKEY.length; i++) {
      const mangled = PETER_VKEY.slice(0, i) + String.fromCharCode(PETER_VKEY.charCodeAt(i) + 1) + PETER_VKEY.slice(i + 1);
      assert.throws(() => parseVerifierKey(mangled), { code: 'IM_VALIDATION' }, mangled);
    }
    assert.throws(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'), { code: 'IM_VALIDATION' }, 'unknown algorithm');
  });

  it('signs the Go test note byte for byte', () => {
    assert.equal(signNote(GO_TEXT, peterSigner), `${GO_TEXT}\n${PETER_SIG}`);
  });

  it('opens the Go test note: known keys verified, unknown ones listed unverified', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const enoch = parseVerifierKey(ENOCH_VKEY);
    const note = `${GO_TEXT}\n${PETER_SIG}${ENOCH_SIG}`;
    const one = openNote(note, [peter]);
    assert.equal(one.body, GO_TEXT);
    assert.deepEqual(
      one.signatures.map((s) => [s.name, s.keyId, s.verified, s.keyKnown]),
      [['PeterNeumann', 0xc74f20a3, true, true], ['EnochRoot', 0xaf0cfe78, false, false]],
    );
    assert.deepEqual(openNote(note, [peter, enoch]).signatures.map((s) => s.verified), [true, true]);
    assert.deepEqual(openNote(new TextEncoder().encode(note), []).signatures.map((s) => s.verified), [false, false]);
    // Go's "invalid signature" case: four characters spliced into the signature.
    const corrupt = `${GO_TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    assert.deepEqual(openNote(corrupt, [peter]).signatures.map((s) => [s.verified, s.keyKnown]), [[false, true]]);
  });

  it('refuses the malformed notes Go refuses', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const bad = [
      GO_TEXT,
      `${GO_TEXT}\n`,
      `${GO_TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${GO_TEXT}\n${PETER_SIG}`,
      `${GO_TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
      `${GO_TEXT}\n${PETER_SIG}Unexpected line.\n`,
      `${GO_TEXT}\n${PETER_SIG.repeat(101)}`,
      `${GO_TEXT}\n— PeterNeumann x08go/Z=\n`,
      `${GO_TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`,
    ];
    for (const note of bad) assert.throws(() => openNote(note, [peter]), { code: 'IM_VALIDATION' }, JSON.stringify(note.slice(-40)));
    assert.throws(() => openNote(new Uint8Array([0xff, ...new TextEncoder().encode(`${GO_TEXT}\n${PETER_SIG}`)]), [peter]), { code: 'IM_VALIDATION' });
  });

  it('verifies the c2sp.org/signed-note example', () => {
    const v = parseVerifierKey('example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k');
    const note = 'This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n';
    assert.deepEqual(openNote(note, [v]).signatures.map((s) => s.verified), [true]);
  });

  it('verifies a real witnessed checkpoint: the log signature and a cosignature/v1', () => {
    const opened = openNote(ARCHE_NOTE, [parseVerifierKey(ARCHE_VKEY), parseVerifierKey(REMORA_VKEY)]);
    assert.equal(opened.body, ARCHE_BODY);
    assert.deepEqual(
      opened.signatures.filter((s) => s.verified).map((s) => s.name),
      ['arche2025h1.staging.ct.transparency.dev', 'remora.n621.de'],
    );
    const line = ARCHE_NOTE.split('\n').find((l) => l.startsWith('— remora.n621.de')) as string;
    const remora = parseVerifierKey(REMORA_VKEY);
    const ok = verifyCosignature(ARCHE_BODY, line, { name: 'remora.n621.de', publicKey: remora.publicKey });
    assert.equal(ok.verified, true);
    assert.equal(ok.timeSeconds, 0x6a122120);
    assert.equal(verifyCosignature(ARCHE_BODY.replace('1432088532', '1432088533'), line, remora).verified, false);
  });
});

describe('signed notes: our own keys', () => {
  const log = newSigner('audit.example.com/log');
  const body = 'audit.example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n';

  it('round-trips with several signers; a tampered body, a wrong key or a truncated signature does not verify', () => {
    const other = newSigner('backup.example.com');
    const note = signNote(body, [log, other]);
    const v = ed25519NoteVerifier(log.name, log.publicKey);
    const w = ed25519NoteVerifier(other.name, other.publicKey);
    assert.deepEqual(openNote(note, [v, w]).signatures.map((s) => s.verified), [true, true]);

    const tampered = note.replace('\n3\n', '\n4\n');
    assert.deepEqual(openNote(tampered, [v, w]).signatures.map((s) => [s.verified, s.keyKnown]), [[false, true], [false, true]]);

    const stranger = newSigner(log.name);
    assert.deepEqual(openNote(note, [ed25519NoteVerifier(log.name, stranger.publicKey)]).signatures.map((s) => s.keyKnown), [false, false], 'same name, other key: unknown');

    const [first] = note.slice(body.length + 1).split('\n') as [string];
    const blob = base64ToBytes(first.split(' ')[2] as string);
    const truncated = `${body}\n— ${log.name} ${Buffer.from(blob.subarray(0, blob.length - 1)).toString('base64')}\n`;
    assert.deepEqual(openNote(truncated, [v]).signatures.map((s) => [s.verified, s.keyKnown]), [[false, true]]);
    const tooShort = `${body}\n— ${log.name} ${Buffer.from(blob.subarray(0, 4)).toString('base64')}\n`;
    assert.throws(() => openNote(tooShort, [v]), { code: 'IM_VALIDATION' });
    assert.deepEqual(openNote(`${body}\n${tamperLine(first)}`, [v]).signatures.map((s) => s.verified), [false]);
  });

  it('keeps blank lines inside the text (the signatures follow the last one)', () => {
    const text = 'para one\n\npara two\n';
    const opened = openNote(signNote(text, log), [ed25519NoteVerifier(log.name, log.publicKey)]);
    assert.equal(opened.body, text);
    assert.equal(opened.signatures[0]?.verified, true);
  });

  it('refuses to sign text without a final newline, with control characters, or with a bad key name', () => {
    assert.throws(() => signNote('no newline', log), { code: 'IM_VALIDATION' });
    assert.throws(() => signNote('tab\there\n', log), { code: 'IM_VALIDATION' });
    assert.throws(() => signNote('lone \ud800 surrogate\n', log), { code: 'IM_VALIDATION' });
    assert.throws(() => signNote(body, { ...log, name: 'has space' }), { code: 'IM_VALIDATION' });
    assert.throws(() => signNote(body, { ...log, name: 'a+b' }), { code: 'IM_VALIDATION' });
  });

  it('adds witness lines to a note once', () => {
    const witness = newSigner('witness.example.org/w1');
    const note = signNote(body, log);
    const line = cosign(body, witness, 1_700_000_000);
    const witnessed = addNoteSignatures(addNoteSignatures(note, [line]), [line]);
    assert.equal(witnessed, note + line);
    const opened = openNote(witnessed, [ed25519NoteVerifier(log.name, log.publicKey), cosignatureNoteVerifier(witness.name, witness.publicKey)]);
    assert.deepEqual(opened.signatures.map((s) => s.verified), [true, true]);
    assert.throws(() => addNoteSignatures(note, ['not a signature line']), { code: 'IM_VALIDATION' });
  });
});

describe('witness cosignatures', () => {
  const witness = newSigner('witness.example.org/w1');
  const body = formatCheckpoint({ origin: 'audit.example.com/log', size: 42, rootHash: new Uint8Array(32).fill(7) });

  it('round-trips, carrying the timestamp, under a type 0x04 key ID', () => {
    const line = cosign(body, witness, 1_717_171_717);
    const r = verifyCosignature(body, line, witness);
    assert.deepEqual(r, { verified: true, timeSeconds: 1_717_171_717 });
    const blob = base64ToBytes(line.trimEnd().split(' ')[2] as string);
    assert.equal(blob.length, 4 + 8 + 64);
    assert.equal(new DataView(blob.buffer).getUint32(0), noteKeyId(witness.name, witness.publicKey, SIG_TYPE_COSIGNATURE_V1));
    assert.notEqual(noteKeyId(witness.name, witness.publicKey, SIG_TYPE_COSIGNATURE_V1), noteKeyId(witness.name, witness.publicKey));
  });

  it('fails for a changed timestamp, another body, another witness key, or a plain Ed25519 verifier', () => {
    const line = cosign(body, witness, 1_717_171_717);
    const blob = base64ToBytes(line.trimEnd().split(' ')[2] as string);
    new DataView(blob.buffer).setBigUint64(4, 1_717_171_718n);
    const retimed = `— ${witness.name} ${Buffer.from(blob).toString('base64')}\n`;
    assert.deepEqual(verifyCosignature(body, retimed, witness), { verified: false, timeSeconds: 1_717_171_718 });
    assert.equal(verifyCosignature(body.replace('\n42\n', '\n43\n'), line, witness).verified, false);
    assert.equal(verifyCosignature(body, line, newSigner(witness.name)).verified, false);
    const note = `${body}\n${line}`;
    assert.deepEqual(openNote(note, [ed25519NoteVerifier(witness.name, witness.publicKey)]).signatures.map((s) => s.keyKnown), [false]);
  });

  it('only cosigns checkpoints, at a whole non-negative number of seconds', () => {
    assert.throws(() => cosign('just some text\n', witness, 1), { code: 'IM_VALIDATION' });
    assert.throws(() => cosign(body, witness, -1), { code: 'IM_VALIDATION' });
    assert.throws(() => cosign(body, witness, 1.5), { code: 'IM_VALIDATION' });
  });
});
