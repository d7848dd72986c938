// Browsers, bundlers and any other runtime: call `await init()` (fetches the .wasm next to
// this file) or `initSync({ module })` once before `new Warden(...)`.
export { default as init, initSync, Warden } from './warden_wasm.js';
export { handleRequest } from './http.js';
// Adds Warden.prototype.governStream and governTransform.
import './stream.js';
