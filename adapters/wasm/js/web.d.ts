// Types of the `warden-wasm/web` entry point: initialise explicitly before use.
export * from './index.js';
export { default as init, initSync } from './warden_wasm.js';
export type { InitInput, SyncInitInput, InitOutput } from './warden_wasm.js';
