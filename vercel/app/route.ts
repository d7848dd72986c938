// POST / : the invoke envelope {action, ...} of the Warden HTTP API.
import { serve } from '../lib/warden';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

// Next.js passes a context as the second argument: not serve's `waitUntil`.
const handler = (request: Request) => serve(request);
export const GET = handler;
export const POST = handler;
