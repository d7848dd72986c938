// Node.js (and Deno through its Node compatibility): the module is read from disk next to
// this file and instantiated synchronously on import, so `new Warden(...)` works right away.
import { readFileSync } from 'node:fs';
import { initSync } from './warden_wasm.js';

initSync({ module: readFileSync(new URL('./warden_wasm_bg.wasm', import.meta.url)) });

export { Warden } from './warden.js';
export { handleRequest } from './http.js';
// Adds Warden.prototype.governStream and governTransform.
import './stream.js';
export { MemoryLedgerStore } from './budget.js';
