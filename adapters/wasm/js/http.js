// Serves a Fetch API Request with Warden's HTTP router (every route of the Warden HTTP API),
// returning a Fetch API Response. Shared by every entry point of the package.

/**
 * @param {import('./warden_wasm.js').Warden} warden
 * @param {Request} request
 * @returns {Promise<Response>}
 */
export async function handleRequest(warden, request) {
  const url = new URL(request.url);
  const headers = [...request.headers];
  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : new Uint8Array(await request.arrayBuffer());
  const out = await warden.handle(request.method, url.pathname + url.search, headers, body);
  return new Response(request.method === 'HEAD' ? null : out.body, { status: out.status, headers: out.headers });
}
