// The Warden HTTP API on Vercel's edge runtime: /api/v1/precheck, /postcheck, /redact,
// /evaluate, /batch, /health, /ready, /api/openapi.json (and JSON 404/405 for the rest),
// served by the same router as the native server, in-process.
import { serve } from '../../../lib/warden';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

// Next.js passes a context as the second argument: not serve's `waitUntil`.
const handler = (request: Request) => serve(request);
export const GET = handler;
export const POST = handler;
export const PUT = handler;
export const PATCH = handler;
export const DELETE = handler;
