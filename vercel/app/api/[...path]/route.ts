// The Warden HTTP API on Vercel's edge runtime: /api/v1/precheck, /postcheck, /redact,
// /evaluate, /batch, /health, /ready, /api/openapi.json (and JSON 404/405 for the rest),
// served by the same router as the native server, in-process.
import { serve } from '../../../lib/warden';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

export const GET = serve;
export const POST = serve;
export const PUT = serve;
export const PATCH = serve;
export const DELETE = serve;
