// The AI route: middleware.ts has governed the request body before this runs. With
// WARDEN_AI_UPSTREAM set, the request goes on to that AI API and its answer comes back
// governed as it streams (SSE, NDJSON or text, see lib/warden.ts `proxyAi`); without it, the
// route echoes what it received (i.e. the governed body), as an example to replace.
import { proxyAi } from '../../../../lib/warden';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

export async function POST(request: Request): Promise<Response> {
  const upstream = process.env.WARDEN_AI_UPSTREAM;
  if (upstream && upstream.trim() !== '') return proxyAi(request, upstream.trim());
  const text = await request.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return Response.json({ received: body });
}
