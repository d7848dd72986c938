// Vercel Edge Functions, Next.js middleware and route handlers on the edge runtime, and
// Cloudflare Workers: these platforms forbid compiling WebAssembly from bytes at run time and
// instead hand a precompiled WebAssembly.Module to an import with the `?module` suffix.
import wasmModule from './warden_wasm_bg.wasm?module';
import { initSync } from './warden_wasm.js';

initSync({ module: wasmModule });

export { Warden } from './warden.js';
export { handleRequest } from './http.js';
// Adds Warden.prototype.governStream and governTransform.
import './stream.js';
export { MemoryLedgerStore } from './budget.js';
export { loadNameTables } from './names.js';
