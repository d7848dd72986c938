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
//   WARDEN_AI_UPSTREAM  optional AI API base URL: /api/ai/<path> is proxied to <url>/<path>
//                    and its (streamed) answer governed (`proxyAi`); unset: the route echoes
//   WARDEN_AI_FORMAT  optional: the answer's stream format (openai, anthropic, ndjson, text);
//                    default from its content type (SSE: openai)
//   WARDEN_BUDGET_STORE   `memory`: per-user budgets (requests with a user_id to the HTTP API)
//                    kept in this isolate; unset: budgets off. For budgets shared by every
//                    isolate pass a store object instead (`budgetStore`, docs/edge.md: Upstash).
//   BUDGET_DEFAULT_LIMIT  monthly limit in USD of users without an explicit one (default 10)
//   WARDEN_EVENTS_URL     optional: each decision's `decision.v1` event is POSTed here as JSON,
//                    after the response (`waitUntil`), never delaying or changing a decision
import { Warden, handleRequest, loadNameTables } from 'warden-wasm';
import type { DecisionEvent, EvaluateResponse, StreamFormat, WardenOptions } from 'warden-wasm';

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

let instance: Promise<{ warden: Warden } | { error: Error }> | undefined;

/**
 * A Warden with `options`; when the policy looks for person names (`detect_extra: [person]`),
 * with the name tables, fetched from the package's `warden-names.bin` only then.
 */
async function build(options: WardenOptions): Promise<Warden> {
  try {
    return new Warden(options);
  } catch (e) {
    if ((e as { field?: string }).field !== 'nameTables') throw e;
    return new Warden({ ...options, nameTables: await loadNameTables() });
  }
}

/** The isolate's Warden; throws (every time, without retrying) when it cannot be built. */
export async function getWarden(): Promise<Warden> {
  if (instance === undefined) {
    const s = settings();
    instance = build({
      policy: s.policy,
      policyName: 'WARDEN_POLICY',
      piiTokenSalt: s.salt,
      onError: s.onError as OnError | undefined,
      apiKeys: s.apiKeys,
      requestPolicy: s.requestPolicy as WardenOptions['requestPolicy'],
      budgetStore: s.budgetStore as WardenOptions['budgetStore'],
      budgetDefaultLimit: s.budgetDefaultLimit === undefined ? undefined : Number(s.budgetDefaultLimit),
      onDecision: s.eventsUrl === undefined ? undefined : queueEvent,
    }).then(
      (warden) => ({ warden }),
      (e) => ({ error: e instanceof Error ? e : new Error(String(e)) }),
    );
  }
  const built = await instance;
  if ('error' in built) throw built.error;
  return built.warden;
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

/**
 * `url` without the query parameters Next.js appends for a catch-all route's segments on the
 * edge runtime (`?path=v1&path=postcheck&path=stream`, or `nxtPpath=` in other versions):
 * the trailing entries whose values are exactly the path's segments after `prefix`. A query
 * of the client's own is kept.
 */
export function withoutRouteParams(url: URL, prefix: string): URL {
  if (!url.pathname.startsWith(prefix)) return url;
  const segments = url.pathname.slice(prefix.length).split('/').filter((x) => x !== '');
  const entries = [...url.searchParams];
  if (segments.length === 0 || entries.length < segments.length) return url;
  const tail = entries.slice(entries.length - segments.length);
  const decoded = segments.map((x) => {
    try {
      return decodeURIComponent(x);
    } catch {
      return x;
    }
  });
  const appended = tail.every(([k, v], i) => (k === 'path' || k === 'nxtPpath') && (v === decoded[i] || v === segments[i]));
  if (!appended) return url;
  const clean = new URL(url);
  clean.search = new URLSearchParams(entries.slice(0, entries.length - segments.length)).toString();
  return clean;
}

/** `request` at `url` (same method, headers and body, streamed). */
function moved(request: Request, url: URL): Request {
  const init: RequestInit & { duplex?: 'half' } = { method: request.method, headers: request.headers };
  if (request.body) {
    init.body = request.body;
    init.duplex = 'half';
  }
  return new Request(url, init);
}

/** Serves the Warden HTTP API (every route) with the native server's router. */
export async function serve(request: Request, waitUntil?: WaitUntil): Promise<Response> {
  let warden: Warden;
  try {
    warden = await getWarden();
  } catch (e) {
    return unavailable(e);
  }
  try {
    const url = new URL(request.url);
    const clean = withoutRouteParams(url, '/api/');
    const response = await handleRequest(warden, clean === url ? request : moved(request, clean));
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
    warden = await getWarden();
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

/** Largest non-streaming (application/json) upstream answer `proxyAi` governs. */
export const ANSWER_LIMIT = 8 * 1024 * 1024;

/** Request headers not forwarded to the upstream AI API. */
const HOP_HEADERS = ['host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'expect', 'upgrade', 'accept-encoding', GOVERNED_HEADER];

/**
 * The stream format of an upstream answer, from WARDEN_AI_FORMAT (forces one) or its content
 * type: SSE → openai, or anthropic when WARDEN_AI_FORMAT=anthropic or the request carries
 * Anthropic's `anthropic-version` header; NDJSON → ndjson; plain text → text; `json` for a
 * whole JSON answer; undefined for anything else.
 */
export function answerFormat(contentType: string | null, anthropic = false): StreamFormat | 'json' | undefined {
  const forced = process.env.WARDEN_AI_FORMAT?.trim();
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'text/event-stream') return forced === 'anthropic' || (anthropic && forced !== 'openai') ? 'anthropic' : 'openai';
  if (forced === 'openai' || forced === 'anthropic' || forced === 'ndjson' || forced === 'text') return forced;
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/ndjson') return 'ndjson';
  if (type === 'text/plain') return 'text';
  if (type === 'application/json' || type.endsWith('+json')) return 'json';
  return undefined;
}

/**
 * Forwards an AI request (already governed by the middleware) to `upstream` + the path after
 * /api/ai, and governs the answer on its way back (postcheck, tool from the path):
 *   - streamed answers (SSE, NDJSON, text) through `warden.governStream`, chunk by chunk, in
 *     the same shape, with an `event: warden` record (SSE) or `{"warden": …}` line (NDJSON)
 *     before the end; a deny cuts the stream after that record (text has no room for a
 *     record: the answer just ends early);
 *   - a whole JSON answer through `evaluate` (egress): 403 on deny, else the governed JSON;
 *   - any other content type: 502 (fail closed: nothing ungoverned reaches the client).
 * Upstream failures are 502. The upstream's status is kept.
 */
export async function proxyAi(request: Request, upstream: string): Promise<Response> {
  let warden: Warden;
  try {
    warden = await getWarden();
  } catch (e) {
    return unavailable(e);
  }
  const url = withoutRouteParams(new URL(request.url), '/api/ai/');
  const rest = url.pathname.replace(/^\/api\/ai/, '');
  const target = `${upstream.replace(/\/+$/, '')}${rest}${url.search}`;
  const headers = new Headers(request.headers);
  for (const h of HOP_HEADERS) headers.delete(h);
  let answer: Response;
  try {
    const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer();
    answer = await fetch(target, { method: request.method, headers, body, redirect: 'manual' });
  } catch (e) {
    return json(502, { error: { code: 'bad_gateway', message: `the AI upstream did not answer: ${(e as Error).message}` } });
  }
  const tool = toolFromPath(url.pathname);
  const format = answerFormat(answer.headers.get('content-type'), request.headers.has('anthropic-version'));
  const out = new Headers({ 'cache-control': 'no-store' });
  if (format === undefined) {
    await answer.body?.cancel();
    return json(502, { error: { code: 'bad_gateway', message: `cannot govern an AI answer of type ${answer.headers.get('content-type') ?? '(none)'}` } });
  }
  if (format === 'json') {
    const length = Number(answer.headers.get('content-length') ?? '0');
    const text = length > ANSWER_LIMIT ? undefined : await answer.text();
    if (text === undefined || new TextEncoder().encode(text).length > ANSWER_LIMIT) {
      return json(502, { error: { code: 'bad_gateway', message: `the AI answer exceeds ${ANSWER_LIMIT} bytes` } });
    }
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      return json(502, { error: { code: 'bad_gateway', message: 'the AI answer is not valid JSON' } });
    }
    let result: EvaluateResponse;
    try {
      result = warden.evaluate({ agent_id: settings().agentId, tool, direction: 'egress', payload });
    } catch (e) {
      return json(502, { error: { code: 'bad_gateway', message: `cannot govern the AI answer: ${(e as Error).message}` } });
    }
    if (result.decision === 'deny') {
      return json(403, { error: { code: 'denied', message: 'the answer was blocked by the governance policy' }, decision: result.decision, reasons: result.reasons, policy_id: result.policy_id });
    }
    return json(answer.status, result.modified_payload);
  }
  out.set('content-type', format === 'text' ? 'text/plain; charset=utf-8' : (answer.headers.get('content-type') ?? 'text/event-stream'));
  out.set('x-accel-buffering', 'no');
  if (!answer.body) return new Response(null, { status: answer.status, headers: out });
  const governed = warden.governStream(answer.body, { tool, format });
  return new Response(format === 'text' ? endQuietly(governed) : governed, { status: answer.status, headers: out });
}

/**
 * `stream`, ending cleanly where it errors: a denied text answer has no room for a record, and
 * runtimes treat an errored response body as their own failure (logged, or unhandled).
 */
function endQuietly(stream: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { value, done } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch {
        controller.close();
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
