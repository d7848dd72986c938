// Governs every AI request under /api/ai/ in-process, before the route runs:
//   deny → 403 with reasons; confirm → 409 with reasons; transform → the route receives the
//   transformed body; allow → unchanged. Errors follow ON_ERROR (default block: fail closed).
// Runs on the edge runtime (Next.js' default for middleware).
import { governAiRequest } from './lib/warden';

/** The part of Next.js' `NextFetchEvent` used here. */
interface WaitUntilEvent {
  waitUntil(promise: Promise<unknown>): void;
}

export const config = { matcher: '/api/ai/:path*' };

export async function middleware(request: Request, event?: WaitUntilEvent): Promise<Response | undefined> {
  // `undefined` lets Next.js continue to the route unchanged. Decision events (WARDEN_EVENTS_URL)
  // are sent in `waitUntil`, after the response.
  return governAiRequest(request, event ? (p) => event.waitUntil(p) : undefined);
}
