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

import { readFile } from 'node:fs/promises';

/**
 * The bytes of `warden-names.bin` (the person detector's name tables) for the `nameTables`
 * option: by default the copy shipped next to this file; a path, a file: URL, an http(s) URL or
 * a Response.
 */
export async function loadNameTables(source = new URL('./warden-names.bin', import.meta.url)) {
  if (source instanceof Response) return new Uint8Array(await source.arrayBuffer());
  const url = source instanceof URL ? source : /^https?:/.test(String(source)) ? new URL(String(source)) : null;
  if (url && url.protocol !== 'file:') return fetchNameTables(url);
  return new Uint8Array(await readFile(url ?? source));
}

async function fetchNameTables(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`warden-names.bin: ${url} answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}
