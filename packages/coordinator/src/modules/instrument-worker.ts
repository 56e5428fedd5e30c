// Runs the fuel pass (binaryen) off the coordinator's event loop. One request at a time.
import { parentPort } from 'node:worker_threads';
import { ImError, instrumentModuleError } from './wire.js';
import { instrumentModule } from '@idlemesh/runtime';
import type { InstrumentRequest, InstrumentResponse } from './wire.js';

const port = parentPort;
if (!port) throw new Error('instrument-worker.js runs as a worker thread');
port.on('message', (req: InstrumentRequest) => {
  instrumentModule(req.bytes, { maxMemoryMb: req.maxMemoryMb, maxBytes: req.maxBytes }).then(
    (m) => {
      const res: InstrumentResponse = { id: req.id, ok: true, bytes: m.bytes, abi: m.abi, memory: m.memory };
      port.postMessage(res, [m.bytes.buffer as ArrayBuffer]);
    },
    (err: unknown) => {
      const res: InstrumentResponse = { id: req.id, ok: false, error: err instanceof ImError ? err.toWire() : instrumentModuleError(err) };
      port.postMessage(res);
    },
  );
});
