// The Vercel app (vercel/: route handlers + middleware, with the wasm package) under Vercel's
// `edge-runtime`, served over loopback by edge-runtime's own server: every conformance case
// through the route handler (route and invoke envelope), malformed input, and the middleware
// on /api/ai/* (deny 403, confirm 409, transform forwarded, errors per ON_ERROR).
//
// Like Vercel, the runtime gets the wasm as a precompiled WebAssembly.Module bound to the
// `?module` import (compiled in another realm, as Next.js does), and compiling wasm or
// evaluating strings is forbidden inside it.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { EdgeRuntime, runServer } from 'edge-runtime';
import {
  ROOT,
  assertCasesOverHttp,
  assertMalformed,
  assertOtherRoutes,
  deployments,
  middlewareSuite,
  post,
} from './common.mjs';
import { STREAM_ENV, proxyChecks, startUpstream, streamingHttpChecks } from './streams.mjs';

const DEPLOYMENTS = deployments();
const wasmBindings = new Map(); // binding name → wasm file

/** esbuild plugin: `import m from './x.wasm?module'` → the runtime's precompiled module binding. */
const wasmModulePlugin = {
  name: 'wasm-module',
  setup(b) {
    b.onResolve({ filter: /\.wasm\?module$/ }, (args) => ({
      path: join(args.resolveDir, args.path.replace(/\?module$/, '')),
      namespace: 'wasm-module',
    }));
    b.onLoad({ filter: /.*/, namespace: 'wasm-module' }, (args) => {
      const name = `wasm_${createHash('sha256').update(args.path).digest('hex').slice(0, 16)}`;
      wasmBindings.set(name, args.path);
      return { contents: `export default globalThis[${JSON.stringify(name)}];`, loader: 'js' };
    });
  },
};

let bundle;
const servers = [];

/**
 * Starts one "deployment" of the Vercel app with `env` as its environment variables. As on
 * Vercel, code inside the runtime may not compile wasm (nor eval strings); the platform
 * compiles each `?module` binding beforehand, outside the runtime's realm, exactly as
 * Next.js' own edge sandbox does in `next dev` / `next build`.
 */
async function deploy(env) {
  const modules = new Map([...wasmBindings].map(([name, file]) => [name, new WebAssembly.Module(readFileSync(file))]));
  const runtime = new EdgeRuntime({
    codeGeneration: { strings: false, wasm: false },
    extend: (context) => {
      // Vercel Edge exposes the project's environment variables as process.env.
      context.process = { env: { ...env } };
      for (const [name, module] of modules) context[name] = module;
      return context;
    },
  });
  runtime.evaluate(bundle);
  const server = await runServer({ runtime, port: 0, host: '127.0.0.1' });
  servers.push(server);
  return server.url.replace(/\/$/, '');
}

test('inside the runtime, compiling wasm from bytes is forbidden (as on Vercel)', async () => {
  const runtime = new EdgeRuntime({ codeGeneration: { strings: false, wasm: false } });
  assert.throws(() => runtime.evaluate('new WebAssembly.Module(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]))'), /disallowed/);
  assert.throws(() => runtime.evaluate('eval("1")'), /disallowed/);
});

before(async () => {
  const result = await build({
    entryPoints: [join(ROOT, 'tests', 'edge', 'edge-app.mjs')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['edge-light'],
    mainFields: ['module', 'main'],
    plugins: [wasmModulePlugin],
    logLevel: 'warning',
    // The glue's async `init()` reads import.meta.url; edge.js uses `initSync` only.
    logOverride: { 'empty-import-meta': 'silent' },
  });
  bundle = result.outputFiles[0].text;
  assert.ok(wasmBindings.size === 1, `one wasm binding (${[...wasmBindings.values()]})`);
});

after(async () => {
  for (const s of servers) await s.close();
});

for (const d of DEPLOYMENTS) {
  describe(`route handler, conformance ${JSON.stringify(d.env)}`, () => {
    let base;
    before(async () => {
      base = await deploy({ PII_TOKEN_SALT: d.salt, ON_ERROR: d.onError, WARDEN_POLICY: d.policyText, WARDEN_REQUEST_POLICY: 'replace' });
    });
    for (const [file, c] of d.cases) {
      test(`[${file}] ${c.name} (route and envelope)`, async () => {
        await assertCasesOverHttp(base, { cases: [[file, c]] }, 'edge-runtime');
      });
    }
  });
}

test('route handler: the other routes, and malformed input is 4xx JSON without killing the isolate', async () => {
  const d = DEPLOYMENTS[0];
  const base = await deploy({ PII_TOKEN_SALT: d.salt, WARDEN_POLICY: d.policyText });
  await assertOtherRoutes(base);
  await assertMalformed(base);
});

test('route handler: API keys from WARDEN_API_KEYS', async () => {
  const base = await deploy({ PII_TOKEN_SALT: 's', WARDEN_API_KEYS: 'k1,k2' });
  assert.equal((await post(`${base}/api/v1/redact`, { text: 'x' })).status, 401);
  assert.equal((await post(`${base}/api/v1/redact`, { text: 'x' }, { 'x-governs-key': 'k2' })).status, 200);
  assert.equal((await fetch(`${base}/api/v1/health`)).status, 200);
});

middlewareSuite('', deploy);

describe('streaming: the AI proxy route and POST /api/v1/postcheck/stream', () => {
  let upstream;
  let base;
  before(async () => {
    upstream = await startUpstream();
    base = await deploy({ ...STREAM_ENV, WARDEN_AI_UPSTREAM: upstream.base });
  });
  after(() => upstream.close());
  for (const [name, check] of proxyChecks(6000)) test(name, () => check({ base, upstream }));
  for (const [name, check] of streamingHttpChecks(7000)) test(name, () => check({ base }));
});
