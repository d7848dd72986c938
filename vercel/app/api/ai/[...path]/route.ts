// Example AI route: middleware.ts has governed the body before this runs, so what arrives
// here is what the policy allows (PII tokenized or redacted). Replace the echo with your
// model or tool call.
export const runtime = 'edge';
export const dynamic = 'force-dynamic';

export async function POST(request: Request): Promise<Response> {
  const text = await request.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  return Response.json({ received: body });
}
