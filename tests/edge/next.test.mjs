// The Vercel app (vercel/) built with `next build` and served by `next start` on loopback:
// Next.js itself routing to the middleware and the edge route handlers, with the wasm
// package bundled through its `edge-light` entry (`?module` import), as `vercel deploy`
// builds it. Every conformance case (route and envelope), malformed input, the middleware's
// decisions and ON_ERROR. scripts/test-edge installs vercel/'s dependencies and builds first.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  assertCasesOverHttp,
  assertMalformed,
  assertOtherRoutes,
  deployments,
  freePort,
  middlewareSuite,
  post,
} from './common.mjs';
import { STREAM_ENV, proxyChecks, startUpstream, streamingHttpChecks } from './streams.mjs';

const APP = join(ROOT, 'vercel');
const NEXT = join(APP, 'node_modules', '.bin', 'next');
const DEPLOYMENTS = deployments();
const started = [];

// Only what a deployment sets: nothing of Warden's configuration leaks in from this process.
const BASE_ENV = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(PII_TOKEN_SALT|ON_ERROR|WARDEN_|WEBHOOK_)/.test(k)),
);

/** `next start` with `env` as the project's environment variables. */
async function start(env) {
  const port = await freePort();
  const child = spawn(NEXT, ['start', '-H', '127.0.0.1', '-p', String(port)], {
    cwd: APP,
    env: { ...BASE_ENV, NEXT_TELEMETRY_DISABLED: '1', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (process.env.WARDEN_EDGE_PIDS) appendFileSync(process.env.WARDEN_EDGE_PIDS, `${child.pid}\n`);
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  started.push(child);
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited ${child.exitCode}:\n${log}`);
    try {
      await fetch(`${base}/api/v1/health`);
      return base;
    } catch {
      if (Date.now() > deadline) throw new Error(`next start not answering:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

before(() => {
  assert.ok(existsSync(join(APP, '.next', 'BUILD_ID')), 'vercel/ is built (scripts/test-edge runs `next build`)');
});

after(() => {
  for (const child of started) {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
});

DEPLOYMENTS.forEach((d, i) => {
  describe(`next start, conformance ${JSON.stringify(d.env)}`, () => {
    let base;
    before(async () => {
      base = await start({ PII_TOKEN_SALT: d.salt, ON_ERROR: d.onError ?? '', WARDEN_POLICY: d.policyText, WARDEN_REQUEST_POLICY: 'replace' });
    });
    for (const [file, c] of d.cases) {
      test(`[${file}] ${c.name} (route and envelope)`, () => assertCasesOverHttp(base, { cases: [[file, c]] }, 'next'));
    }
    if (i === 0) {
      test('the other routes answer as documented', () => assertOtherRoutes(base));
      test('malformed input is 4xx JSON and the app keeps answering', () => assertMalformed(base));
    }
  });
});

middlewareSuite('next start: ', start);

describe('next start: streaming, the AI proxy route and POST /api/v1/postcheck/stream', () => {
  let upstream;
  let base;
  before(async () => {
    upstream = await startUpstream();
    base = await start({ ...STREAM_ENV, WARDEN_AI_UPSTREAM: upstream.base });
  });
  after(() => upstream.close());
  for (const [name, check] of proxyChecks(8000)) test(name, () => check({ base, upstream }));
  // `next start` hands an edge route the request body only once it has fully arrived (the
  // route's answer still streams out: the proxy checks above see bytes before the upstream ends).
  for (const [name, check] of streamingHttpChecks(9000, { requestStreams: false })) test(name, () => check({ base }));
});

// The app fetches the package's warden-names.bin only when WARDEN_POLICY looks for person names
// (vercel/lib/warden.ts); `next build` must ship the asset beside the edge bundle for that fetch.
describe('next start: a policy looking for person names loads warden-names.bin', () => {
  let base;
  before(async () => {
    base = await start({ WARDEN_POLICY: JSON.stringify({ version: 'v1', detect_extra: ['person', 'street_address'] }) });
  });
  test('names are found as the native engine finds them', async () => {
    const text = 'Dear Ms. Okafor, we ship to 742 Evergreen Terrace, Springfield, IL 62704 today.';
    const cued = await post(`${base}/api/v1/redact`, { text });
    assert.equal(cued.status, 200, cued.text);
    assert.equal(cued.json.redacted, 'Dear Ms. <PERSON>, we ship to <ADDRESS> today.');
    // No cue word: only the name lists tell that these two words are a name.
    const listed = await post(`${base}/api/v1/redact`, { text: 'Escalated by Maria Fernandez yesterday.' });
    assert.equal(listed.json.redacted, 'Escalated by <PERSON> yesterday.', listed.text);
  });
});
