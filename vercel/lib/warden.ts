// Warden in-process on Vercel's edge runtime: one `Warden` per isolate (policy parsed and
// detectors built once), serving the HTTP API (route handlers) and governing AI request
// bodies (middleware.ts). No network call: the wasm engine runs in this isolate.
//
// Configuration (Vercel project environment variables):
//   PII_TOKEN_SALT   token salt (set it: the built-in default makes readiness warn)
//   ON_ERROR         block (default, fail closed) | pass | best_effort
//   WARDEN_POLICY    optional policy text (YAML or JSON); default: the bundled policy
//   WARDEN_API_KEYS  optional API keys for the HTTP API (X-Governs-Key)
//   WARDEN_AGENT_ID  agent id the middleware reports (default "vercel-middleware")
//   WARDEN_REQUEST_POLICY  what a request's policy_config may do: tighten (default here: only
//                    stricter than WARDEN_POLICY), replace (SPEC §3) or off
//   WARDEN_BUDGET_STORE   `memory`: per-user budgets (requests with a user_id to the HTTP API)
//                    kept in this isolate; unset: budgets off. For budgets shared by every
//                    isolate pass a store object instead (`budgetStore`, docs/edge.md: Upstash).
//   BUDGET_DEFAULT_LIMIT  monthly limit in USD of users without an explicit one (default 10)
//   WARDEN_EVENTS_URL     optional: each decision's `decision.v1` event is POSTed here as JSON,
//                    after the response (`waitUntil`), never delaying or changing a decision
import { Warden, handleRequest } from 'warden-wasm';
import type { DecisionEvent, EvaluateResponse, WardenOptions } from 'warden-wasm';

type OnError = NonNullable<WardenOptions['onError']>;

/** Header marking the middleware's own forwarded request (see `forward`): an HMAC of the body. */
export const GOVERNED_HEADER = 'x-warden-governed';

/** Largest AI request body the middleware governs (the HTTP API's default limit). */
export const BODY_LIMIT = 1024 * 1024;

/** A non-empty environment variable. Static `process.env.X` reads, as Next.js requires. */
function settings() {
  const nonEmpty = (v: string | undefined) => (v && v.trim() !== '' ? v : undefined);
  return {
    policy: nonEmpty(process.env.WARDEN_POLICY),
    salt: nonEmpty(process.env.PII_TOKEN_SALT),
    onError: nonEmpty(process.env.ON_ERROR),
    apiKeys: nonEmpty(process.env.WARDEN_API_KEYS),
    agentId: nonEmpty(process.env.WARDEN_AGENT_ID) ?? 'vercel-middleware',
    requestPolicy: nonEmpty(process.env.WARDEN_REQUEST_POLICY) ?? 'tighten',
    budgetStore: nonEmpty(process.env.WARDEN_BUDGET_STORE),
    budgetDefaultLimit: nonEmpty(process.env.BUDGET_DEFAULT_LIMIT),
    eventsUrl: nonEmpty(process.env.WARDEN_EVENTS_URL),
  };
}

/** Where `onDecision` puts events until a `waitUntil` sends them (bounded: oldest dropped). */
const pendingEvents: DecisionEvent[] = [];
const MAX_PENDING_EVENTS = 1000;

function queueEvent(event: DecisionEvent): void {
  if (pendingEvents.length >= MAX_PENDING_EVENTS) pendingEvents.shift();
  pendingEvents.push(event);
}

/** A `waitUntil` of the platform (Next.js middleware's `event.waitUntil`). */
export type WaitUntil = (promise: Promise<unknown>) => void;

/**
 * Sends the queued events to WARDEN_EVENTS_URL (one POST per event) inside `waitUntil`, so
 * the response never waits for them; without `waitUntil` they are sent unawaited (best
 * effort: the platform may cancel them after the response). Failures are logged, not retried.
 */
export function flushEvents(waitUntil?: WaitUntil): void {
  const url = settings().eventsUrl;
  if (url === undefined || pendingEvents.length === 0) return;
  const events = pendingEvents.splice(0, pendingEvents.length);
  const send = Promise.all(
    events.map((event) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) }).then(
        (res) => {
          if (!res.ok) console.error(JSON.stringify({ level: 'error', msg: 'decision event not accepted', status: res.status }));
        },
        (e) => console.error(JSON.stringify({ level: 'error', msg: 'decision event not sent', error: String(e) })),
      ),
    ),
  );
  if (waitUntil) waitUntil(send);
}

let instance: { warden: Warden } | { error: Error } | undefined;

/** The isolate's Warden; throws (every time, without retrying) when it cannot be built. */
export function getWarden(): Warden {
  if (instance === undefined) {
    const s = settings();
    try {
      instance = {
        warden: new Warden({
          policy: s.policy,
          policyName: 'WARDEN_POLICY',
          piiTokenSalt: s.salt,
          onError: s.onError as OnError | undefined,
          apiKeys: s.apiKeys,
          requestPolicy: s.requestPolicy as WardenOptions['requestPolicy'],
          budgetStore: s.budgetStore as WardenOptions['budgetStore'],
          budgetDefaultLimit: s.budgetDefaultLimit === undefined ? undefined : Number(s.budgetDefaultLimit),
          onDecision: s.eventsUrl === undefined ? undefined : queueEvent,
        }),
      };
    } catch (e) {
      instance = { error: e instanceof Error ? e : new Error(String(e)) };
    }
  }
  if ('error' in instance) throw instance.error;
  return instance.warden;
}

/** What an internal failure yields: `ON_ERROR`, where anything but `pass` fails closed. */
function onError(): OnError {
  const v = settings().onError;
  return v === 'pass' || v === 'best_effort' ? v : 'block';
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

function unavailable(e: unknown): Response {
  const message = e instanceof Error ? e.message : String(e);
  return json(503, { error: { code: 'governance_unavailable', message } });
}

/** Serves the Warden HTTP API (every route) with the native server's router. */
export async function serve(request: Request, waitUntil?: WaitUntil): Promise<Response> {
  let warden: Warden;
  try {
    warden = getWarden();
  } catch (e) {
    return unavailable(e);
  }
  try {
    const response = await handleRequest(warden, request);
    flushEvents(waitUntil);
    return response;
  } catch (e) {
    // Only reading the request body can fail here (e.g. the client went away).
    return json(400, { error: { code: 'invalid_request', message: `could not read the request: ${String(e)}` } });
  }
}

/** `/api/ai/chat/completions` → `chat.completions`: the tool a policy's `tool_access` names. */
export function toolFromPath(pathname: string): string {
  return pathname
    .replace(/^\/api\/ai\/?/, '')
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s; // a malformed %-escape names a tool as written
      }
    })
    .join('.');
}

/**
 * Governs the JSON body of an AI request in-process (JSON mode: every string leaf).
 * Resolves to `undefined` when the request may continue unchanged, or to the response to
 * send instead: 403 (deny) or 409 (confirm) with the reasons, 400/413 for a malformed body,
 * 503 when Warden itself fails under `ON_ERROR=block` (the default: fail closed), or the
 * response of the request forwarded with its transformed body.
 *
 * The tool is taken from the path, never from the client, so a client cannot pick a laxer
 * rule. Requests without a body (GET, HEAD, OPTIONS, empty) have nothing to govern.
 */
export async function governAiRequest(request: Request, waitUntil?: WaitUntil): Promise<Response | undefined> {
  if (request.method === 'GET' || request.method === 'HEAD' || request.method === 'OPTIONS') {
    return undefined;
  }
  const mode = onError();
  let warden: Warden;
  try {
    warden = getWarden();
  } catch (e) {
    return mode === 'pass' ? undefined : unavailable(e);
  }
  const length = Number(request.headers.get('content-length') ?? '0');
  if (length > BODY_LIMIT) {
    return json(413, { error: { code: 'payload_too_large', message: `request body exceeds the limit of ${BODY_LIMIT} bytes` } });
  }
  // A clone: the route behind the middleware still reads the original body.
  let text: string;
  try {
    text = await request.clone().text();
  } catch (e) {
    return json(400, { error: { code: 'invalid_request', message: `could not read the request: ${String(e)}` } });
  }
  if (new TextEncoder().encode(text).length > BODY_LIMIT) {
    return json(413, { error: { code: 'payload_too_large', message: `request body exceeds the limit of ${BODY_LIMIT} bytes` } });
  }
  if (text.trim() === '') {
    return undefined;
  }
  let payload: unknown;
  try {
    payload = JSON.parse(text);
  } catch (e) {
    return json(400, { error: { code: 'invalid_json', message: `request body is not valid JSON: ${(e as Error).message}` } });
  }
  const tool = toolFromPath(new URL(request.url).pathname);
  let result: EvaluateResponse;
  try {
    // `run`: the whole service, so the decision reaches onDecision (WARDEN_EVENTS_URL).
    result = (await warden.run('evaluate', { agent_id: settings().agentId, tool, direction: 'ingress', payload })) as EvaluateResponse;
    flushEvents(waitUntil);
  } catch (e) {
    // A request Warden rejects (e.g. JSON nested too deeply) is the client's error...
    const status = (e as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      const { code, message } = e as { code?: string; message?: string };
      return json(status, { error: { code: code ?? 'invalid_request', message: message ?? String(e) } });
    }
    // ...anything else is Warden failing, and ON_ERROR decides.
    return mode === 'pass' ? undefined : unavailable(e);
  }
  const verdict = { decision: result.decision, reasons: result.reasons, violations: result.violations, policy_id: result.policy_id };
  switch (result.decision) {
    case 'allow':
      return undefined;
    case 'deny':
      return json(403, { error: { code: 'denied', message: 'blocked by the governance policy' }, ...verdict });
    case 'confirm':
      return json(409, { error: { code: 'confirmation_required', message: 'a human must confirm this call' }, ...verdict });
    case 'transform':
      if (await isOwnForward(request.headers.get(GOVERNED_HEADER), text)) {
        // Our own forwarded body still changes: never loop, and never let it through, since
        // it still holds what the policy transforms (fail closed whatever ON_ERROR says).
        return unavailable(new Error('the governed body did not reach a fixed point; refusing to forward it again'));
      }
      return forward(request, result.modified_payload);
  }
}

let forwardKey: Promise<CryptoKey> | undefined;

/**
 * The key that marks our own forwards: PII_TOKEN_SALT (a per-deployment secret) when set, so
 * every isolate of the deployment recognises every other's forwards; else a random key of
 * this isolate. A client cannot forge a mark without it.
 */
function markKey(): Promise<CryptoKey> {
  if (forwardKey === undefined) {
    const salt = settings().salt;
    const raw = salt ? new TextEncoder().encode(`warden-forward:${salt}`) : crypto.getRandomValues(new Uint8Array(32));
    forwardKey = crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  }
  return forwardKey;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The mark of a forwarded body: `v1=<hex HMAC-SHA256(key, body)>`. */
async function mark(body: string): Promise<string> {
  return `v1=${hex(await crypto.subtle.sign('HMAC', await markKey(), new TextEncoder().encode(body)))}`;
}

/** Whether `header` is our mark of exactly `body` (a client-set or stale header is not). */
async function isOwnForward(header: string | null, body: string): Promise<boolean> {
  if (header === null || !/^v1=[0-9a-f]{64}$/.test(header)) return false;
  const mac = new Uint8Array((header.slice(3).match(/../g) ?? []).map((h) => parseInt(h, 16)));
  return crypto.subtle.verify('HMAC', await markKey(), mac, new TextEncoder().encode(body));
}

/**
 * Next.js middleware can only pass a request on with its original body, so a transformed
 * body is sent as a new request to the same URL; the middleware governs that request again
 * (its body is already transformed, so it is allowed and reaches the route). The marker
 * header (an HMAC of the body) only stops a loop: it never skips governance, and a client
 * cannot forge it, so setting it gains nothing.
 */
async function forward(request: Request, payload: unknown): Promise<Response> {
  const headers = new Headers(request.headers);
  for (const h of ['content-length', 'host', 'connection', 'transfer-encoding', 'keep-alive', 'expect']) {
    headers.delete(h);
  }
  const body = JSON.stringify(payload);
  headers.set('content-type', 'application/json');
  headers.set(GOVERNED_HEADER, await mark(body));
  return fetch(request.url, { method: request.method, headers, body, redirect: 'manual' });
}
