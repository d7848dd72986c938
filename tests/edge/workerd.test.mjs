// The Cloudflare Worker (dist/worker, built by scripts/build-wasm) under workerd via
// `wrangler dev` (local, no login, telemetry off; config tests/edge/wrangler.toml), on loopback:
//   - one Worker per distinct conformance env (policy in a local KV namespace,
//     PII_TOKEN_SALT / ON_ERROR as vars): every case through the route and the envelope;
//   - the other routes and malformed input (4xx JSON, and the isolate keeps answering);
//   - decision events: signed, delivered after the response (`ctx.wait_until`), retried,
//     dead-lettered to KV; audit lines on the Worker's log;
//   - a `--env budgets` Worker: Durable Object budgets, 200 concurrent spends, no overspend;
//   - a `--env limits` Worker: API keys (401), the rate-limit binding (429 +
//     Retry-After), and a KV policy change picked up without a restart.
// Writes cold-start and warm latencies to $WARDEN_EDGE_REPORT (JSON) when set.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT, assertBadInput, assertCase, assertMalformed, assertOtherRoutes, deployments, freePort, post, read } from './common.mjs';
import { STREAM_POLICY, STREAM_SALT, streamCase, streamPost, streamingHttpChecks } from './streams.mjs';

const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');
const CONFIG = join(ROOT, 'tests', 'edge', 'wrangler.toml');
const WEBHOOK_SECRET = 'edge-test-webhook-secret';
const ENV = { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1', CI: '1' };
const DEPLOYMENTS = deployments();
const report = {};
const started = [];

/** Runs a wrangler subcommand to completion. */
async function wrangler(args) {
  await promisify(execFile)(WRANGLER, args, { cwd: ROOT, env: ENV, maxBuffer: 16 << 20 });
}

/**
 * Starts `wrangler dev` for `environment` with the policy in its local KV and `vars`, waits
 * for it to answer, and measures the first request (wasm compile + policy load: cold start).
 */
async function startWorker(name, environment, vars, policyText) {
  const persist = mkdtempSync(join(tmpdir(), `warden-${name}-`));
  const policyFile = join(persist, 'policy.yaml');
  writeFileSync(policyFile, policyText);
  const kv = ['kv', 'key', 'put', '--config', CONFIG, '--binding', 'WARDEN_POLICY', '--local', '--persist-to', persist, '--env', environment];
  await wrangler([...kv, 'policy', '--path', policyFile]);
  const port = await freePort();
  const inspector = await freePort();
  const args = ['dev', '--config', CONFIG, '--env', environment, '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector)];
  args.push('--persist-to', persist, '--show-interactive-dev-session=false', '--log-level', 'log');
  for (const [k, v] of Object.entries(vars)) if (v !== undefined) args.push('--var', `${k}:${v}`);
  // Own process group, so that stopping it also stops workerd.
  const child = spawn(WRANGLER, args, { cwd: ROOT, env: ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (process.env.WARDEN_EDGE_PIDS) appendFileSync(process.env.WARDEN_EDGE_PIDS, `${child.pid}\n`);
  const worker = { name, persist, environment, base: `http://127.0.0.1:${port}`, child, log: '', readyAt: 0 };
  started.push(worker);
  child.stdout.on('data', (d) => {
    worker.log += d;
    if (!worker.readyAt && worker.log.includes('Ready on')) worker.readyAt = performance.now();
  });
  child.stderr.on('data', (d) => (worker.log += d));
  const deadline = Date.now() + 240_000;
  while (!worker.readyAt) {
    if (child.exitCode !== null) throw new Error(`wrangler dev (${name}) exited ${child.exitCode}:\n${worker.log}`);
    if (Date.now() > deadline) throw new Error(`wrangler dev (${name}) not ready:\n${worker.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // The first request compiles the wasm, reads the policy from KV and builds the detectors.
  let first;
  for (;;) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${worker.base}/api/v1/health`);
      if (res.status === 200) {
        first = performance.now() - t0;
        break;
      }
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`worker ${name} never answered:\n${worker.log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  report[name] = { first_request_ms: Math.round(first), ready_to_first_response_ms: Math.round(performance.now() - worker.readyAt) };
  return worker;
}

function stop(worker) {
  try {
    process.kill(-worker.child.pid, 'SIGTERM');
  } catch {
    // Already gone.
  }
}

// Webhook receiver: verifies signatures; tool `flaky.tool` fails twice per event before
// succeeding, `down.tool` always fails (→ dead letter), `slow.tool` answers after 3 s.
const received = [];
const attempts = new Map();
let hook;
let hookUrl;

function startHook() {
  hook = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const ts = req.headers['x-warden-timestamp'];
      const sig = req.headers['x-warden-signature'];
      const want = `sha256=${createHmac('sha256', WEBHOOK_SECRET).update(`${ts}.${body}`).digest('hex')}`;
      let event;
      try {
        event = JSON.parse(body);
      } catch {
        event = undefined;
      }
      const key = event?.idempotencyKey;
      const n = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, n);
      const tool = event?.data?.tool;
      const entry = { event, validSignature: sig === want, ts: Number(ts), at: Date.now(), attempt: n };
      if (tool === 'down.tool' || (tool === 'flaky.tool' && n <= 2)) {
        res.writeHead(503).end();
        return;
      }
      received.push(entry);
      if (tool === 'slow.tool') setTimeout(() => res.writeHead(200).end(), 3000);
      else res.writeHead(200).end();
    });
  });
  return new Promise((r) => hook.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${hook.address().port}/hook`)));
}

async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const workers = {};

before(async () => {
  hookUrl = await startHook();
  const [main, ...others] = DEPLOYMENTS;
  const starts = [
    startWorker('main', '', {
      PII_TOKEN_SALT: main.salt,
      ON_ERROR: main.onError,
      WEBHOOK_URL: hookUrl,
      WEBHOOK_SECRET,
      WEBHOOK_MAX_RETRIES: '2',
      WEBHOOK_BACKOFF_BASE_MS: '50',
      WEBHOOK_TIMEOUT_S: '5',
    }, main.policyText).then((w) => (workers.main = w)),
    ...others.map((d, i) =>
      startWorker(`env${i + 1}`, '', { PII_TOKEN_SALT: d.salt, ON_ERROR: d.onError }, d.policyText).then((w) => (workers[`env${i + 1}`] = w)),
    ),
    startWorker('stream', '', { PII_TOKEN_SALT: STREAM_SALT }, STREAM_POLICY).then((w) => (workers.stream = w)),
    startWorker('budgets', 'budgets', { PII_TOKEN_SALT: 'budgets-salt' }, main.policyText).then((w) => (workers.budgets = w)),
    startWorker('limits', 'limits', { PII_TOKEN_SALT: 'limits-salt', POLICY_REFRESH_S: '1' }, main.policyText).then(
      (w) => (workers.limits = w),
    ),
  ];
  await Promise.all(starts);
});

after(async () => {
  for (const w of started) stop(w);
  await new Promise((r) => hook.close(r));
  for (const w of started) rmSync(w.persist, { recursive: true, force: true });
  if (process.env.WARDEN_EDGE_REPORT) writeFileSync(process.env.WARDEN_EDGE_REPORT, JSON.stringify({ workerd: report }, null, 1));
});

DEPLOYMENTS.forEach((d, i) => {
  const name = i === 0 ? 'main' : `env${i}`;
  describe(`workerd conformance ${JSON.stringify(d.env)}`, () => {
    for (const [file, c] of d.cases) {
      test(`[${file}] ${c.name}`, async () => {
        const base = workers[name].base;
        const route = await post(`${base}/api/v1/${c.endpoint}`, c.request);
        assert.equal(route.status, 200, route.text);
        assertCase(c, route.json, 'workerd route');
        const envelope = await post(`${base}/`, { ...c.request, action: c.endpoint });
        assert.equal(envelope.status, 200, envelope.text);
        assertCase(c, envelope.json, 'workerd envelope');
      });
    }
  });
});

test('workerd: the other routes answer as documented', async () => {
  await assertOtherRoutes(workers.main.base);
  const ready = await read(await fetch(`${workers.main.base}/api/v1/ready`));
  assert.equal(ready.json.checks.policy_file.detail, 'kv:WARDEN_POLICY/policy');
  assert.equal(ready.json.checks.dlq.status, 'ok');
  assert.match(ready.json.checks.stores.detail, /WARDEN_RATE_LIMITER/);
});

test('workerd: /api/metrics is this isolate\'s Prometheus text', async () => {
  const base = workers.main.base;
  assert.equal((await post(`${base}/api/v1/precheck`, { tool: 'metrics.tool', raw_text: 'a@b.io' })).status, 200);
  const metrics = await read(await fetch(`${base}/api/metrics`));
  assert.equal(metrics.status, 200);
  assert.match(metrics.headers.get('content-type'), /^text\/plain; version=0.0.4/);
  assert.match(metrics.text, /^warden_isolate_start_seconds \d+(\.\d+)?$/m);
  assert.match(metrics.text, /^precheck_requests_total\{operation="precheck",decision="[a-z]+",policy_id="[a-z-]+"\} [1-9]\d*$/m);
  assert.match(metrics.text, /^precheck_duration_seconds_count\{operation="precheck"\} [1-9]\d*$/m);
  assert.ok(!metrics.text.includes('a@b.io') && !metrics.text.includes('metrics.tool'));
  // Behind API keys like every route but health.
  assert.equal((await fetch(`${workers.limits.base}/api/metrics`)).status, 401);
});

test('workerd: Durable Object budgets never overspend under 200 concurrent spends', async () => {
  const base = workers.budgets.base;
  const user = `buyer-${Date.now()}`;
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      post(`${base}/api/v1/precheck`, { tool: 'shop.buy', raw_text: 'buy', user_id: user, corr_id: `c${i}`, tool_config: { metadata: { purchase_amount: 0.01 } } }),
    ),
  );
  for (const r of results) assert.equal(r.status, 200, r.text);
  const count = (d) => results.filter((r) => r.json.decision === d).length;
  // As on the server: exactly 89 spends of $0.01003 fit under 90 % of $1.00, the rest need confirmation.
  assert.deepEqual([count('allow'), count('confirm')], [89, 111]);
  assert.ok(Math.max(...results.map((r) => r.json.budget_status.currentSpend)) <= 1.0);
  const status = await post(`${base}/api/v1/precheck`, { tool: 'shop.buy', raw_text: '', user_id: user });
  assert.ok(Math.abs(status.json.budget_status.currentSpend - 0.89267) < 1e-9, status.text);
  // Another user has their own object and budget.
  const other = await post(`${base}/api/v1/precheck`, { tool: 'shop.buy', raw_text: 'buy', user_id: `${user}-2` });
  assert.equal(other.json.budget_status.currentSpend, 0.00003);
  const ready = await read(await fetch(`${base}/api/v1/ready`));
  assert.match(ready.json.checks.stores.detail, /budgets: durable_objects/);
  const metrics = await read(await fetch(`${base}/api/metrics`));
  assert.match(metrics.text, /^budget_checks_total\{outcome="passed"\} [1-9]\d*$/m);
});

test('workerd: malformed input is 4xx JSON and the isolate keeps answering', async () => {
  await assertMalformed(workers.main.base);
});

test('workerd: the bad-input corpus (tests/bad-input): no 5xx, JSON answers, named 4xx', async () => {
  await assertBadInput(workers.main.base);
});

test('workerd: warm precheck latency (loopback round trip)', async () => {
  const body = JSON.stringify({ tool: 'verify_identity', scope: 'net.external', raw_text: 'User email: alice@example.com, SSN: 123-45-6789' });
  const times = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    const res = await fetch(`${workers.env1?.base ?? workers.main.base}/api/v1/precheck`, { method: 'POST', body });
    await res.text();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  report.warm_precheck_round_trip_ms = { p50: +times[100].toFixed(2), p99: +times[198].toFixed(2) };
});

test('workerd: decision events are signed, sent after the response, and carry no raw text', async () => {
  const base = workers.main.base;
  const res = await post(`${base}/api/v1/precheck`, { tool: 'verify_identity', scope: 'net.external', raw_text: 'SSN: 123-45-6789', corr_id: 'evt-1', tags: ['t1'] });
  assert.equal(res.status, 200);
  const entry = await eventually('the event of evt-1', () => received.find((e) => e.event?.data?.correlationId === 'evt-1'));
  assert.ok(entry.validSignature, 'X-Warden-Signature verifies');
  assert.ok(Math.abs(entry.ts - Date.now() / 1000) < 300, 'fresh X-Warden-Timestamp');
  const { event } = entry;
  assert.equal(event.type, 'INGEST');
  assert.equal(event.schema, 'decision.v1');
  assert.equal(event.data.decision, 'transform');
  assert.equal(event.data.direction, 'ingress');
  assert.deepEqual(event.data.tags, ['t1']);
  assert.match(event.data.payloadHash, /^hmac-sha256:[0-9a-f]{64}$/);
  assert.equal(event.data.rawText, undefined);
  assert.ok(!JSON.stringify(event).includes('123-45-6789'));
});

test('workerd: a slow webhook never delays the response', async () => {
  const t0 = performance.now();
  const res = await post(`${workers.main.base}/api/v1/precheck`, { tool: 'slow.tool', raw_text: 'hello', corr_id: 'slow-1' });
  const elapsed = performance.now() - t0;
  assert.equal(res.status, 200);
  assert.ok(elapsed < 1500, `response took ${elapsed} ms while the webhook takes 3 s`);
  await eventually('the slow event', () => received.find((e) => e.event?.data?.correlationId === 'slow-1'));
});

test('workerd: failed deliveries are retried, then dead-lettered to KV', async () => {
  const base = workers.main.base;
  assert.equal((await post(`${base}/api/v1/precheck`, { tool: 'flaky.tool', raw_text: 'x', corr_id: 'flaky-1' })).status, 200);
  const flaky = await eventually('the flaky event', () => received.find((e) => e.event?.data?.correlationId === 'flaky-1'));
  assert.equal(flaky.attempt, 3);
  assert.equal((await post(`${base}/api/v1/precheck`, { tool: 'down.tool', raw_text: 'x', corr_id: 'down-1' })).status, 200);
  await eventually('the dead letter', () => workers.main.log.includes('event dead-lettered'));
  const stdout = await promisify(execFile)(
    WRANGLER,
    ['kv', 'key', 'list', '--config', CONFIG, '--binding', 'WARDEN_DLQ', '--local', '--persist-to', workers.main.persist, '--env', ''],
    { cwd: ROOT, env: ENV },
  );
  const keys = JSON.parse(stdout.stdout);
  assert.ok(keys.some((k) => k.name.startsWith('dlq:')), stdout.stdout);
});

test('workerd: one audit line per governed request on the Worker log, without raw PII', async () => {
  await post(`${workers.main.base}/api/v1/precheck`, { tool: 'verify_identity', raw_text: 'SSN: 123-45-6789', corr_id: 'audit-1' });
  const line = await eventually('the audit line', () =>
    workers.main.log.split('\n').find((l) => l.includes('"type":"audit"') && l.includes('"corr_id":"audit-1"')),
  );
  assert.ok(!line.includes('123-45-6789'), line);
});

test('workerd: API keys from WARDEN_API_KEYS guard the routes (401), health stays open', async () => {
  const base = workers.limits.base;
  assert.equal((await post(`${base}/api/v1/redact`, { text: 'a@b.io' })).status, 401);
  assert.equal((await post(`${base}/api/v1/redact`, { text: 'a@b.io' }, { 'x-governs-key': 'wrong' })).status, 401);
  const ok = await post(`${base}/api/v1/redact`, { text: 'a@b.io' }, { 'x-governs-key': 'test-key-2' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal((await fetch(`${base}/api/v1/health`)).status, 200);
});

test('workerd: the rate-limit binding answers 429 with Retry-After', async () => {
  const base = workers.limits.base;
  const headers = { 'x-governs-key': 'test-key-1' };
  // The binding allows 5 per 60 s window; a window boundary mid-burst gets one more try.
  for (let round = 0; round < 2; round++) {
    const user = `rl-user-${Date.now()}-${round}`;
    const statuses = [];
    let limited;
    for (let i = 0; i < 6; i++) {
      const res = await post(`${base}/api/v1/precheck`, { tool: 't', raw_text: 'x', user_id: user }, headers);
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    if (limited) {
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
      assert.equal(limited.json.error.code, 'rate_limited');
      assert.ok(Number(limited.headers.get('retry-after')) >= 1);
      // Another user is not limited.
      assert.equal((await post(`${base}/api/v1/precheck`, { tool: 't', raw_text: 'x', user_id: `${user}-other` }, headers)).status, 200);
      return;
    }
  }
  assert.fail('no 429 after 6 requests in two windows');
});

test('workerd: a new policy in KV is picked up without a restart; an invalid one is ignored', async () => {
  const w = workers.limits;
  const headers = { 'x-governs-key': 'test-key-1' };
  const req = { tool: 'brand.new', raw_text: 'x', user_id: 'policy-reload' };
  assert.equal((await post(`${w.base}/api/v1/precheck`, req, headers)).json.decision, 'allow');
  const policyFile = join(w.persist, 'policy.yaml');
  const put = (text) => {
    writeFileSync(policyFile, text);
    return wrangler(['kv', 'key', 'put', '--config', CONFIG, '--binding', 'WARDEN_POLICY', '--local', '--persist-to', w.persist, '--env', w.environment, 'policy', '--path', policyFile]);
  };
  await put('version: v1\ndeny_tools: [brand.new]\n');
  // Refresh runs after a response once POLICY_REFRESH_S (1 s) has passed: keep asking.
  const denied = await (async () => {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const r = await post(`${w.base}/api/v1/precheck`, { ...req, user_id: `reload-${Date.now()}` }, headers);
      if (r.json?.decision === 'deny') return r.json;
      await new Promise((res) => setTimeout(res, 300));
    }
    return undefined;
  })();
  assert.deepEqual(denied?.reasons, ['blocked tool: brand.new']);
  await put('tool_access: 3\n');
  const warned = await (async () => {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      await post(`${w.base}/api/v1/precheck`, { ...req, user_id: `warn-${Date.now()}` }, headers);
      // With API keys on, readiness details need a key (docs/security.md).
      const ready = await read(await fetch(`${w.base}/api/v1/ready`, { headers }));
      if (ready.json?.checks?.policy_file?.status === 'warning') return ready.json;
      await new Promise((res) => setTimeout(res, 300));
    }
    return undefined;
  })();
  assert.ok(warned, 'readiness warns about the invalid policy');
  // The last good policy still decides.
  const still = await post(`${w.base}/api/v1/precheck`, { ...req, user_id: `still-${Date.now()}` }, headers);
  assert.equal(still.json.decision, 'deny');
});

describe('workerd: POST /api/v1/postcheck/stream streams both ways', () => {
  for (const [name, check] of streamingHttpChecks(10_000, { resend: true })) test(name, () => check({ base: workers.stream.base }));
  after(() => {
    // Errors of the Worker (a trap, a restart) explain a failure here.
    const lines = workers.stream.log.split('\n').filter((l) => /panic|error|restart|uncaught/i.test(l));
    for (const l of lines.slice(-20)) console.log(`# worker log: ${l.slice(0, 300)}`);
  });
});

test('workerd: a stream\'s decision event is delivered after the stream ends', async () => {
  const { pieces } = streamCase('openai', 11_000, 2000);
  const res = await streamPost(`${workers.main.base}/api/v1/postcheck/stream?tool=web.search&format=openai&corr_id=stream-evt-1`, pieces);
  assert.equal(res.status, 200, res.text.slice(0, 300));
  const entry = await eventually('the event of stream-evt-1', () => received.find((e) => e.event?.data?.correlationId === 'stream-evt-1'));
  assert.ok(entry.validSignature);
  assert.equal(entry.event.data.direction, 'egress');
  assert.ok(!JSON.stringify(entry.event).includes('@example.com'));
});
