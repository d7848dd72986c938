// POST / : the invoke envelope {action, ...} of the Warden HTTP API.
import { serve } from '../lib/warden';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

export const GET = serve;
export const POST = serve;
