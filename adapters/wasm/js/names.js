// `loadNameTables` of the edge and web entries: platforms without a file system fetch the
// asset. Where a bundler cannot serve it, import it as data instead (wrangler: a `Data` module
// rule for `*.bin`) and pass the bytes as `nameTables`.

/**
 * The bytes of `warden-names.bin` (the person detector's name tables) for the `nameTables`
 * option, fetched from `source` (default: next to this module).
 */
export async function loadNameTables(source = new URL('./warden-names.bin', import.meta.url)) {
  const response = source instanceof Response ? source : await fetch(source);
  if (!response.ok) throw new Error(`warden-names.bin: ${response.url || String(source)} answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}
