// The Vercel app of vercel/ as one script for Vercel's `edge-runtime` (bundled by esbuild in
// edge-runtime.test.mjs with the `edge-light` condition, as Next.js bundles edge code). It
// wires the real middleware and route modules the way Next.js routes requests to them:
// middleware first when its matcher matches, then the most specific route file, whose
// exported method handles the request (405 when the method is not exported).
import * as middlewareModule from '../../vercel/middleware';
import * as rootRoute from '../../vercel/app/route';
import * as apiRoute from '../../vercel/app/api/[...path]/route';
import * as aiRoute from '../../vercel/app/api/ai/[...path]/route';

/** Next.js matcher `/x/:path*` → a predicate (the only form vercel/middleware.ts uses). */
function matcher(pattern) {
  const base = pattern.replace(/\/:path\*$/, '');
  if (base === pattern) throw new Error(`unsupported matcher ${pattern}`);
  return (path) => path === base || path.startsWith(`${base}/`);
}

const middlewareMatches = matcher(middlewareModule.config.matcher);

function routeFor(path) {
  if (path === '/') return rootRoute;
  if (path === '/api/ai' || path.startsWith('/api/ai/')) return aiRoute;
  if (path.startsWith('/api/')) return apiRoute;
  return undefined;
}

async function dispatch(request, event) {
  const path = new URL(request.url).pathname;
  if (middlewareMatches(path)) {
    const early = await middlewareModule.middleware(request, { waitUntil: (p) => event.waitUntil(p) });
    if (early !== undefined) return early;
  }
  const route = routeFor(path);
  if (route === undefined) return new Response('not found', { status: 404 });
  const handler = route[request.method];
  if (typeof handler !== 'function') return new Response(null, { status: 405 });
  return handler(request);
}

addEventListener('fetch', (event) => {
  event.respondWith(dispatch(event.request, event));
});
