// Shared by the edge test harnesses (node --test): the conformance corpus, how a response is
// compared with a case (as tests/support.rs does), the malformed-input cases every HTTP
// runtime must answer with 4xx JSON, and small HTTP helpers. Loopback only.
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { test, describe, before } from 'node:test';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CORPUS = join(ROOT, 'tests', 'conformance');

/** Every case of tests/conformance/*.json, as [file, case]. */
export function loadCases() {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.json')).sort();
  const out = [];
  for (const f of files) {
    for (const c of JSON.parse(readFileSync(join(CORPUS, f), 'utf8'))) out.push([f, c]);
  }
  return out;
}

/**
 * The deployments the corpus needs: one per distinct `env`, with the settings a deployment
 * takes (salt, policy text, ON_ERROR) and its cases.
 */
export function deployments() {
  const groups = new Map();
  for (const [file, c] of loadCases()) {
    const key = JSON.stringify(Object.entries(c.env ?? {}).sort());
    if (!groups.has(key)) {
      const env = c.env ?? {};
      const policyFile = env.POLICY_FILE ?? 'policy.tool_access.yaml';
      groups.set(key, {
        env,
        salt: env.PII_TOKEN_SALT,
        onError: env.ON_ERROR,
        policyFile,
        policyText: readFileSync(join(CORPUS, policyFile), 'utf8'),
        cases: [],
      });
    }
    groups.get(key).cases.push([file, c]);
  }
  return [...groups.values()];
}

/** Asserts decision, raw_text_out, reasons and policy_id, as tests/support.rs compares. */
export function assertCase(c, got, where) {
  const label = `${where}: ${c.name}`;
  assert.equal(got?.decision, c.expect.decision, `${label}: decision`);
  assert.deepEqual(got?.raw_text_out ?? null, c.expect.raw_text_out ?? null, `${label}: raw_text_out`);
  assert.deepEqual(got?.reasons, c.expect.reasons, `${label}: reasons`);
  assert.equal(got?.policy_id, c.expect.policy_id, `${label}: policy_id`);
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** POSTs JSON (or raw text/bytes) and returns {status, headers, json, text}. */
export async function post(url, body, headers = {}) {
  const raw = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const res = await fetch(url, { method: 'POST', body: raw, headers: { 'content-type': 'application/json', ...headers } });
  return read(res);
}

/** Reads a response: status, headers, body text and (when JSON) the parsed body. */
export async function read(res) {
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Polls `url` until it answers 200, for up to `ms` (a fresh wasm isolate compiles first). */
export async function waitReady(url, ms = 120_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not ready after ${ms} ms (${last})`);
}

const NESTED = '['.repeat(100_000) + ']'.repeat(100_000);

/**
 * Malformed input every HTTP runtime must answer with the documented 4xx JSON error (and
 * survive: the harness checks health and a valid request afterwards).
 * Each: [name, method, path, body, status, code, field?]
 */
export const MALFORMED = [
  ['truncated JSON', 'POST', '/api/v1/precheck', '{"tool":', 400, 'invalid_json'],
  ['empty body', 'POST', '/api/v1/precheck', '', 400, 'invalid_json'],
  ['not UTF-8', 'POST', '/api/v1/postcheck', new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), 400, 'invalid_json'],
  ['deeply nested JSON', 'POST', '/api/v1/evaluate', NESTED, 400, 'invalid_json'],
  ['array body', 'POST', '/api/v1/precheck', '[1]', 422, 'invalid_request'],
  ['missing raw_text', 'POST', '/api/v1/precheck', '{"tool":"t"}', 422, 'invalid_request', 'raw_text'],
  ['wrong type', 'POST', '/api/v1/precheck', '{"tool":"t","raw_text":"x","tags":[1]}', 422, 'invalid_request', 'tags[0]'],
  ['redact without text', 'POST', '/api/v1/redact', '{"txt":"a"}', 422, 'invalid_request', 'text'],
  // agent_id defaults to the runtime's (docs/tork-envelope.md); payload never does (fail closed).
  ['evaluate without payload', 'POST', '/api/v1/evaluate', '{"agent_id":"a","message":"ssn 123-45-6789"}', 422, 'invalid_request', 'payload'],
  ['batch requests not an array', 'POST', '/api/v1/batch', '{"requests":5}', 422, 'invalid_request', 'requests'],
  ['envelope unknown action', 'POST', '/', '{"action":"explode"}', 422, 'invalid_request', 'action'],
  // Without action an envelope is an evaluate (the Tork guide's default), which needs a payload.
  ['envelope without action', 'POST', '/', '{"text":"a"}', 422, 'invalid_request', 'payload'],
  ['unknown route', 'GET', '/api/v1/nope', undefined, 404, 'not_found'],
  ['wrong method', 'GET', '/api/v1/precheck', undefined, 405, 'method_not_allowed'],
  ['body over 1 MiB', 'POST', '/api/v1/redact', JSON.stringify({ text: 'a'.repeat(1024 * 1024 + 16) }), 413, 'payload_too_large'],
];

/** Sends every MALFORMED case to `base` and asserts the 4xx JSON error. */
export async function assertMalformed(base, headers = {}) {
  for (const [name, method, path, body, status, code, field] of MALFORMED) {
    const res = await read(await fetch(base + path, { method, body, headers: { 'content-type': 'application/json', ...headers } }));
    assert.equal(res.status, status, `${name}: status (${res.text.slice(0, 200)})`);
    assert.equal(res.json?.error?.code, code, `${name}: error.code (${res.text.slice(0, 200)})`);
    assert.equal(typeof res.json?.error?.message, 'string', `${name}: error.message`);
    if (field) assert.equal(res.json.error.field, field, `${name}: error.field`);
  }
  // The isolate survived: it still answers, and still decides.
  const health = await read(await fetch(`${base}/api/v1/health`, { headers }));
  assert.equal(health.status, 200);
  assert.equal(health.json.ok, true);
  const ok = await post(`${base}/api/v1/precheck`, { tool: 't', scope: 'net.external', raw_text: 'mail a@b.io' }, headers);
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.raw_text_out, 'mail <USER_EMAIL>');
}

/** Runs every case of `deployment` against `base`: the route and the invoke envelope. */
export async function assertCasesOverHttp(base, deployment, where, headers = {}) {
  for (const [file, c] of deployment.cases) {
    const route = await post(`${base}/api/v1/${c.endpoint}`, c.request, headers);
    assert.equal(route.status, 200, `[${file}] ${where} route: ${c.name}: ${route.text}`);
    assertCase(c, route.json, `[${file}] ${where} route`);
    const envelope = await post(`${base}/`, { ...c.request, action: c.endpoint }, headers);
    assert.equal(envelope.status, 200, `[${file}] ${where} envelope: ${c.name}: ${envelope.text}`);
    assertCase(c, envelope.json, `[${file}] ${where} envelope`);
  }
}

/** Every route of SPEC §2 that is not a decision answers as documented. */
export async function assertOtherRoutes(base, headers = {}) {
  const health = await read(await fetch(`${base}/api/v1/health`));
  assert.equal(health.status, 200);
  assert.equal(health.json.service, 'warden');
  const ready = await read(await fetch(`${base}/api/v1/ready`));
  assert.equal(ready.status, 200, ready.text);
  for (const k of ['policy', 'policy_file', 'detectors', 'environment', 'dlq', 'stores']) {
    assert.ok(ready.json.checks[k]?.status, `ready.checks.${k}: ${ready.text}`);
  }
  const openapi = await read(await fetch(`${base}/api/openapi.json`));
  assert.equal(openapi.status, 200);
  assert.match(openapi.json.openapi, /^3\.1/);
  const redact = await post(`${base}/api/v1/redact`, { text: 'call +44 20 7946 0958 or mail bob@corp.io' }, headers);
  assert.equal(redact.status, 200, redact.text);
  assert.deepEqual(redact.json, {
    redacted: 'call <USER_PHONE> or mail <USER_EMAIL>',
    matches: [
      { type: 'phone_number', start: 5, end: 21 },
      { type: 'email_address', start: 30, end: 41 },
    ],
  });
  const evaluate = await post(
    `${base}/api/v1/evaluate`,
    { agent_id: 'agent-7', tool: 'crm.update', payload: { customer: { email: 'bob@corp.io', note: 'card 4111 1111 1111 1111' } } },
    headers,
  );
  assert.equal(evaluate.status, 200, evaluate.text);
  assert.equal(evaluate.json.decision, 'transform');
  assert.deepEqual(evaluate.json.modified_payload, { customer: { email: '<USER_EMAIL>', note: 'card <CREDIT_CARD>' } });
  const batch = await post(
    `${base}/api/v1/batch`,
    { requests: [{ action: 'precheck', tool: 't', raw_text: 'a@b.io' }, { action: 'postcheck', tool: 't', raw_text: 'ok' }, { action: 'redact', text: 'x' }] },
    headers,
  );
  assert.equal(batch.status, 200, batch.text);
  assert.equal(batch.json.processed, 3);
  assert.deepEqual(batch.json.summary, { allow: 1, deny: 0, transform: 1, confirm: 0, error: 1 });
}

/** The policy the Vercel middleware tests deploy with (WARDEN_POLICY). */
export const MIDDLEWARE_POLICY = `
version: v1
deny_tools: [python.exec]
tool_access:
  payments.refund: { action: confirm }
  support.ticket:
    allow_pii: { PII:email_address: pass_through, PII:us_ssn: tokenize }
defaults:
  ingress: { action: redact }
`;

/** The environment of a Vercel deployment running the middleware tests. */
export const MIDDLEWARE_ENV = { PII_TOKEN_SALT: 'conformance-salt', WARDEN_POLICY: MIDDLEWARE_POLICY };

/**
 * The Vercel middleware on /api/ai/* of a deployment with MIDDLEWARE_ENV, as [name, check]:
 * deny 403, confirm 409, transform forwarded, allow unchanged, the marker header, bad bodies.
 */
export const MIDDLEWARE_CHECKS = [
  [
    'deny → 403 with reasons, the route never runs',
    async (base) => {
      const res = await post(`${base}/api/ai/python/exec`, { code: 'import os' });
      assert.equal(res.status, 403, res.text);
      assert.equal(res.json.decision, 'deny');
      assert.deepEqual(res.json.reasons, ['blocked tool: code/exec']);
      assert.equal(res.json.error.code, 'denied');
      assert.equal(res.json.received, undefined);
      const escaped = await post(`${base}/api/ai/python%2Eexec`, { x: 1 });
      assert.equal(escaped.status, 403, escaped.text); // %-escapes cannot dodge deny_tools
    },
  ],
  [
    'confirm → 409 with reasons',
    async (base) => {
      const res = await post(`${base}/api/ai/payments/refund`, { amount: 50, note: 'refund order 1234' });
      assert.equal(res.status, 409, res.text);
      assert.equal(res.json.decision, 'confirm');
      assert.deepEqual(res.json.reasons, ['tool_access.confirm']);
      assert.deepEqual(res.json.violations, ['tool_access.confirm']);
    },
  ],
  [
    'transform → the route receives the transformed body',
    async (base) => {
      const body = { ticket: { text: 'customer SSN 123-45-6789, reach me at bob@corp.io', tags: ['vip', 42] } };
      const res = await post(`${base}/api/ai/support/ticket`, body);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.received, { ticket: { text: 'customer SSN pii_cd6e3b04, reach me at bob@corp.io', tags: ['vip', 42] } });
      const chat = await post(`${base}/api/ai/chat`, { messages: [{ role: 'user', content: 'card 4111 1111 1111 1111 please' }] });
      assert.equal(chat.status, 200, chat.text);
      assert.deepEqual(chat.json.received, { messages: [{ role: 'user', content: 'card <CREDIT_CARD> please' }] });
      // A malformed %-escape: Next.js itself rejects it (400); otherwise it is governed.
      const odd = await post(`${base}/api/ai/bad%E0%A4%A/chat`, { x: 'ssn 123-45-6789' });
      if (odd.status === 200) assert.deepEqual(odd.json.received, { x: 'ssn <USER_SSN>' });
      else assert.equal(odd.status, 400, odd.text.slice(0, 200));
      assert.ok(!odd.text.includes('123-45-6789'));
    },
  ],
  [
    'allow → the route receives the body unchanged',
    async (base) => {
      const body = { messages: [{ role: 'user', content: 'What is the capital of Norway?' }] };
      const res = await post(`${base}/api/ai/chat`, body);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json.received, body);
    },
  ],
  [
    'a client-set marker header never skips governance',
    async (base) => {
      for (const mark of ['1', `v1=${'0'.repeat(64)}`]) {
        const res = await post(`${base}/api/ai/chat`, { text: 'ssn 123-45-6789' }, { 'x-warden-governed': mark });
        assert.equal(res.status, 200, res.text);
        assert.deepEqual(res.json.received, { text: 'ssn <USER_SSN>' });
        assert.ok(!res.text.includes('123-45-6789'));
      }
    },
  ],
  [
    'malformed bodies are 4xx JSON; bodiless requests pass',
    async (base) => {
      const bad = await post(`${base}/api/ai/chat`, '{"messages": [');
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error.code, 'invalid_json');
      const big = await post(`${base}/api/ai/chat`, JSON.stringify({ text: 'a'.repeat(1024 * 1024) }));
      assert.equal(big.status, 413);
      const deep = await post(`${base}/api/ai/chat`, `{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
      assert.equal(deep.status, 422, deep.text.slice(0, 200));
      assert.equal(deep.json.error.code, 'invalid_request');
      const get = await read(await fetch(`${base}/api/ai/chat`));
      assert.equal(get.status, 405); // governed nothing; the example route has no GET
      const empty = await post(`${base}/api/ai/chat`, '');
      assert.equal(empty.status, 200);
      // Still alive.
      assert.equal((await post(`${base}/api/ai/chat`, { q: 'hi' })).json.received.q, 'hi');
    },
  ],
];

/** A deployment whose WARDEN_POLICY is invalid, failing closed (ON_ERROR unset). */
export const BROKEN_ENV = { PII_TOKEN_SALT: 's', WARDEN_POLICY: 'tool_access: 3' };

/** With BROKEN_ENV: /api/ai and the API answer 503 naming the problem. */
export async function assertFailsClosed(base) {
  const res = await post(`${base}/api/ai/chat`, { text: 'ssn 123-45-6789' });
  assert.equal(res.status, 503, res.text);
  assert.equal(res.json.error.code, 'governance_unavailable');
  assert.match(res.json.error.message, /WARDEN_POLICY/);
  const api = await post(`${base}/api/v1/precheck`, { tool: 't', raw_text: 'x' });
  assert.equal(api.status, 503);
}

/** With BROKEN_ENV plus ON_ERROR=pass: the middleware lets requests through unchanged. */
export async function assertPassesOnError(base) {
  const res = await post(`${base}/api/ai/chat`, { text: 'hello' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json.received, { text: 'hello' });
}

/** With a working policy and ON_ERROR=pass, a forged marker still gets the body governed. */
export async function assertMarkerNotTrusted(base) {
  const res = await post(`${base}/api/ai/chat`, { text: 'ssn 123-45-6789' }, { 'x-warden-governed': '1' });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json.received, { text: 'ssn <USER_SSN>' });
}

// The middleware checks, fail-closed and ON_ERROR=pass tests against an app started by
// `launch(env) -> base URL` (edge-runtime and `next start` share them).
export function middlewareSuite(label, launch) {
  describe(`${label}middleware on /api/ai/*`, () => {
    let base;
    before(async () => {
      base = await launch(MIDDLEWARE_ENV);
    });
    for (const [name, check] of MIDDLEWARE_CHECKS) test(name, () => check(base));
  });
  test(`${label}decision events go to WARDEN_EVENTS_URL after the response; WARDEN_BUDGET_STORE=memory budgets`, async () => {
    await assertEventsAndBudgets(launch);
  });
  test(`${label}an invalid WARDEN_POLICY fails closed (503)`, async () => {
    await assertFailsClosed(await launch(BROKEN_ENV));
  });
  test(`${label}ON_ERROR=pass lets requests through when Warden cannot govern them`, async () => {
    await assertPassesOnError(await launch({ ...BROKEN_ENV, ON_ERROR: 'pass' }));
  });
  test(`${label}ON_ERROR=pass: a client-set marker header does not skip governance`, async () => {
    await assertMarkerNotTrusted(await launch({ ...MIDDLEWARE_ENV, ON_ERROR: 'pass' }));
  });
}

/** The bad-input corpus (tests/bad-input/cases.json), shared with `warden serve`'s runner. */
export function loadBadInput() {
  return JSON.parse(readFileSync(join(ROOT, 'tests', 'bad-input', 'cases.json'), 'utf8')).cases;
}

/** A bad-input case's body: `json`, `text`, `hex` or `repeat` (prefix + unit × times + suffix). */
export function badInputBody(c) {
  if ('json' in c) return JSON.stringify(c.json);
  if ('text' in c) return c.text;
  if ('hex' in c) return new Uint8Array(Buffer.from(c.hex, 'hex'));
  if ('repeat' in c) return c.repeat.prefix + c.repeat.unit.repeat(c.repeat.times) + c.repeat.suffix;
  return undefined;
}

/**
 * Sends every bad-input case to `base`: never a 5xx, every answer JSON, the status the case
 * names (a number or a class such as "4xx"), and for errors `error.code`, `error.message` and
 * the case's code and field. Then the runtime must still answer. (fetch adds a text/plain
 * content type where a case sends none.)
 */
export async function assertBadInput(base, headers = {}) {
  const cases = loadBadInput();
  assert.ok(cases.length >= 100, 'the corpus covers every route and kind of bad input');
  const failures = [];
  for (const c of cases) {
    const h = { ...headers };
    if (c.content_type === undefined) h['content-type'] = 'application/json';
    else if (c.content_type !== null) h['content-type'] = c.content_type;
    let res;
    try {
      res = await read(await fetch(base + c.path, { method: c.method, body: badInputBody(c), headers: h }));
      // `wrangler dev` (not Warden) answers this when its local runtime recycled the worker
      // between requests; it asks for the request to be sent again, so it is, once.
      if (res.status === 503 && res.text.includes('Your worker restarted mid-request')) {
        console.log(`# ${c.name}: the local runtime restarted the worker; sent again`);
        res = await read(await fetch(base + c.path, { method: c.method, body: badInputBody(c), headers: h }));
      }
    } catch (e) {
      failures.push(`${c.name}: no answer: ${e.message}`);
      continue;
    }
    const short = res.text.slice(0, 200);
    const want = c.status;
    const ok = typeof want === 'number' ? res.status === want : String(res.status)[0] === want[0];
    if (res.json === undefined) failures.push(`${c.name}: ${res.status} answer is not JSON: ${JSON.stringify(short)}`);
    else if (res.status >= 500 || !ok) failures.push(`${c.name}: status ${res.status}, want ${want}: ${short}`);
    else if (res.status >= 400) {
      const e = res.json.error ?? {};
      if (typeof e.code !== 'string' || typeof e.message !== 'string' || !e.message) {
        failures.push(`${c.name}: error without code and message: ${short}`);
      }
      for (const key of ['code', 'field']) {
        if (c[key] !== undefined && e[key] !== c[key]) failures.push(`${c.name}: error.${key} = ${e[key]}, want ${c[key]}`);
      }
    }
  }
  const health = await read(await fetch(`${base}/api/v1/health`, { headers }));
  assert.equal(health.status, 200, 'the runtime still answers');
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} bad-input cases failed`);
}

/**
 * Issue 15 on Vercel: with WARDEN_EVENTS_URL the middleware's decisions arrive there as
 * `decision.v1` events (sent in waitUntil, no raw PII), and with WARDEN_BUDGET_STORE=memory the
 * HTTP API keeps per-user budgets: a second $0.50 purchase on a $1.00 limit is refused.
 */
async function assertEventsAndBudgets(launch) {
  const events = [];
  const sink = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      events.push({ path: req.url, event: JSON.parse(body) });
      res.end('{}');
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  try {
    const base = await launch({
      ...MIDDLEWARE_ENV,
      WARDEN_EVENTS_URL: `http://127.0.0.1:${sink.address().port}/events`,
      WARDEN_BUDGET_STORE: 'memory',
      BUDGET_DEFAULT_LIMIT: '1',
    });
    const res = await post(`${base}/api/ai/support/ticket`, { ticket: { text: 'customer SSN 123-45-6789' }, corr: 'ev' });
    assert.equal(res.status, 200, res.text);
    const deadline = Date.now() + 10_000;
    while (!events.some((e) => e.event.data?.decision === 'transform') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const transform = events.find((e) => e.event.data?.decision === 'transform');
    assert.ok(transform, JSON.stringify(events));
    assert.equal(transform.path, '/events');
    assert.equal(transform.event.schema, 'decision.v1');
    assert.equal(transform.event.data.tool, 'support.ticket');
    assert.ok(!JSON.stringify(events).includes('123-45-6789'));
    const body = { tool: 'shop.buy', raw_text: 'buy', user_id: 'buyer', tool_config: { metadata: { purchase_amount: 0.5 } } };
    const first = await post(`${base}/api/v1/precheck`, body);
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.budget_status.currentSpend, 0.50003);
    const second = await post(`${base}/api/v1/precheck`, body);
    assert.equal(second.json.decision, 'deny', second.text);
    assert.ok(second.json.reasons.includes('budget_exceeded'), second.text);
  } finally {
    await new Promise((r) => sink.close(r));
  }
}
