// Serves a Fetch API Request with Warden's HTTP router (every route of the Warden HTTP API),
// returning a Fetch API Response. Shared by every entry point of the package.

/** The route whose request and response bodies stream (everything else is buffered). */
const STREAM_PATH = '/api/v1/postcheck/stream';

/**
 * @param {import('./warden_wasm.js').Warden} warden
 * @param {Request} request
 * @returns {Promise<Response>}
 */
export async function handleRequest(warden, request) {
  const url = new URL(request.url);
  const headers = [...request.headers];
  if (request.method === 'POST' && url.pathname === STREAM_PATH) {
    return handleStreaming(warden, request, url, headers);
  }
  const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : new Uint8Array(await request.arrayBuffer());
  const out = await warden.handle(request.method, url.pathname + url.search, headers, body);
  return new Response(request.method === 'HEAD' ? null : out.body, { status: out.status, headers: out.headers });
}

/** The streaming route: the request body is fed to the router as it arrives, the answer streams out. */
async function handleStreaming(warden, request, url, headers) {
  const call = warden.handleStream(request.method, url.pathname + url.search, headers);
  const head = call.response();
  // Feeds the request body until it ends or the route stops reading (an early 4xx, a deny).
  const feed = (async () => {
    if (!request.body) return call.close();
    const reader = request.body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return call.close();
        if (!(await call.write(value))) return reader.cancel().catch(() => {});
      }
    } catch (e) {
      call.close(`could not read the request body: ${e?.message ?? e}`);
    }
  })();
  const { status, headers: responseHeaders } = await head;
  let finished = false;
  const done = () => {
    if (!finished) {
      finished = true;
      call.close();
      feed.finally(() => call.free());
    }
  };
  const body = new ReadableStream(
    {
      async pull(controller) {
        try {
          const chunk = await call.read();
          if (chunk === undefined) {
            controller.close();
            done();
          } else controller.enqueue(chunk);
        } catch (e) {
          controller.error(e);
          done();
        }
      },
      cancel() {
        done();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(body, { status, headers: responseHeaders });
}
