// Browsers, bundlers and any other runtime: call `await init()` (fetches the .wasm next to
// this file) or `initSync({ module })` once before `new Warden(...)`.
export { default as init, initSync } from './warden_wasm.js';
export { Warden } from './warden.js';
export { handleRequest } from './http.js';
// Adds Warden.prototype.governStream and governTransform.
import './stream.js';
export { MemoryLedgerStore } from './budget.js';
export { loadNameTables } from './names.js';
