// The wasm package (dist/warden-wasm, imported as `warden-wasm` like a user would) under
// Node.js: every conformance case through the JS API, the same through its HTTP handler
// served by a node:http server on loopback, and malformed options / requests, which must
// throw WardenError (never trap the module).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Warden, handleRequest, loadNameTables } from 'warden-wasm';
import { Readable } from 'node:stream';
import { CORPUS, ROOT, assertBadInput, assertCase, assertCasesOverHttp, assertMalformed, assertOtherRoutes, deployments, post } from './common.mjs';
import {
  FORMATS,
  STREAM_POLICY,
  STREAM_SALT,
  assertCutsInside,
  assertDenied,
  assertMatchesOneShot,
  denyCase,
  parseGoverned,
  readStreaming,
  startUpstream,
  streamCase,
  streamPost,
  streamingHttpChecks,
} from './streams.mjs';

const DEPLOYMENTS = deployments();

function wardenFor(d, extra = {}) {
  return new Warden({ policy: d.policyText, policyName: d.policyFile, piiTokenSalt: d.salt, onError: d.onError, ...extra });
}

for (const d of DEPLOYMENTS) {
  describe(`JS API, conformance ${JSON.stringify(d.env)}`, () => {
    const w = wardenFor(d);
    for (const [file, c] of d.cases) {
      test(`[${file}] ${c.name}`, () => {
        const got = c.endpoint === 'postcheck' ? w.postcheck(c.request) : w.precheck(c.request);
        assertCase(c, got, `[${file}] node api`);
        assert.equal(typeof got.ts, 'number');
      });
    }
  });
}

test('policy as an object gives the same answers as its YAML text', () => {
  const d = DEPLOYMENTS[0];
  // The corpus policy, as JSON: parsed by the package's own YAML reader via a JSON round trip.
  const yamlWarden = wardenFor(d);
  const objectPolicy = JSON.parse(JSON.stringify({ version: 'v1', deny_tools: ['rm.rf'], tool_access: { t: { action: 'tokenize' } } }));
  const objectWarden = new Warden({ policy: objectPolicy, piiTokenSalt: d.salt });
  assert.deepEqual(objectWarden.precheck({ tool: 'rm.rf', raw_text: 'x' }).reasons, ['blocked tool: rm.rf']);
  assert.equal(objectWarden.precheck({ tool: 't', raw_text: '123-45-6789' }).raw_text_out, 'pii_cd6e3b04');
  assert.equal(yamlWarden.precheck({ tool: 'python.exec', raw_text: 'x' }).decision, 'deny');
});

let server;
let base;
let httpWarden;

before(async () => {
  // One HTTP deployment per distinct env: here the first, the ON_ERROR ones are checked via the API.
  httpWarden = wardenFor(DEPLOYMENTS[0]);
  server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const request = new Request(`http://127.0.0.1${req.url}`, {
      method: req.method,
      headers: Object.entries(req.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
      body: req.method === 'GET' || req.method === 'HEAD' ? undefined : body,
    });
    const response = await handleRequest(httpWarden, request);
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((r) => server.close(r)));

for (const d of DEPLOYMENTS) {
  describe(`HTTP (node:http + handleRequest), conformance ${JSON.stringify(d.env)}`, () => {
    before(() => {
      httpWarden = wardenFor(d);
    });
    after(() => {
      httpWarden = wardenFor(DEPLOYMENTS[0]);
    });
    for (const [file, c] of d.cases) {
      test(`[${file}] ${c.name} (route and envelope)`, async () => {
        await assertCasesOverHttp(base, { cases: [[file, c]] }, 'node http');
      });
    }
  });
}

test('the other routes over HTTP', async () => {
  await assertOtherRoutes(base);
});

test('malformed HTTP input is 4xx JSON and the module keeps working', async () => {
  await assertMalformed(base);
});

test('the bad-input corpus (tests/bad-input) over HTTP: no 5xx, JSON answers, named 4xx', async () => {
  await assertBadInput(base);
});

test('API keys guard the HTTP routes but not health', async () => {
  httpWarden = new Warden({ piiTokenSalt: 's', apiKeys: ['k1'] });
  try {
    assert.equal((await post(`${base}/api/v1/redact`, { text: 'x' })).status, 401);
    assert.equal((await post(`${base}/api/v1/redact`, { text: 'x' }, { 'x-governs-key': 'nope' })).status, 401);
    assert.equal((await post(`${base}/api/v1/redact`, { text: 'x' }, { 'x-governs-key': 'k1' })).status, 200);
    assert.equal((await fetch(`${base}/api/v1/health`)).status, 200);
  } finally {
    httpWarden = wardenFor(DEPLOYMENTS[0]);
  }
});

test('the JS API answers exactly what the HTTP API answers', async () => {
  const w = wardenFor(DEPLOYMENTS[0]);
  const req = { tool: 'verify_identity', scope: 'net.external', raw_text: 'User email: alice@example.com, SSN: 123-45-6789' };
  const api = w.precheck(req);
  const http = JSON.parse((await w.handle('POST', '/api/v1/precheck', [], JSON.stringify(req))).body);
  delete api.ts;
  delete http.ts;
  assert.deepEqual(api, http);
  const payload = { agent_id: 'a', payload: { e: 'bob@corp.io', n: [1, 'card 4111 1111 1111 1111'] } };
  const apiEval = w.evaluate(payload);
  const httpEval = JSON.parse((await w.handle('POST', '/api/v1/evaluate', [['content-type', 'application/json']], JSON.stringify(payload))).body);
  delete apiEval.ts;
  delete httpEval.ts;
  assert.deepEqual(apiEval, httpEval);
  const text = 'call +44 20 7946 0958 or mail bob@corp.io';
  assert.deepEqual(w.redact(text), JSON.parse((await w.handle('POST', '/api/v1/redact', { 'content-type': 'application/json' }, JSON.stringify({ text }))).body));
});

test('offsets are char indices JavaScript can slice with', () => {
  const w = new Warden({ piiTokenSalt: 's' });
  const text = 'héllo 👋 mail bob@corp.io';
  const { matches } = w.redact(text);
  assert.equal(Array.from(text).slice(matches[0].start, matches[0].end).join(''), 'bob@corp.io');
});

function throwsWarden(fn, code, pattern) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof Error, 'an Error');
    assert.equal(e.name, 'WardenError');
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

test('invalid options throw a clear WardenError', () => {
  throwsWarden(() => new Warden(5), 'invalid_options', /options must be an object/);
  throwsWarden(() => new Warden('salt'), 'invalid_options');
  throwsWarden(() => new Warden({ piiTokensalt: 'x' }), 'invalid_options', /unknown field `piiTokensalt`/);
  throwsWarden(() => new Warden({ piiTokenSalt: 5 }), 'invalid_options', /piiTokenSalt/);
  throwsWarden(() => new Warden({ onError: 'explode' }), 'invalid_options', /onError/);
  throwsWarden(() => new Warden({ policy: 42 }), 'invalid_options', /policy/);
  throwsWarden(() => new Warden({ policy: 'version: v1\ndeny_tools: 3\n', policyName: 'p.yaml' }), 'invalid_options', /p\.yaml:2:/);
  throwsWarden(() => new Warden({ policy: { tool_access: { t: { action: 'explode' } } } }), 'invalid_options', /tool_access\.t\.action/);
  throwsWarden(() => new Warden({ policy: { custom_pii: [{ type: 'x', pattern: '(' }] } }), 'invalid_options', /custom_pii/);
  throwsWarden(() => new Warden({ apiKeys: [5] }), 'invalid_options', /apiKeys/);
  throwsWarden(() => new Warden({ bodyLimit: 0 }), 'invalid_options', /bodyLimit/);
  const cyclic = {};
  cyclic.self = cyclic;
  throwsWarden(() => new Warden(cyclic), 'invalid_options');
  // Defaults: no options at all.
  assert.equal(new Warden().precheck({ tool: 'python.exec', raw_text: 'x' }).decision, 'deny');
  assert.equal(new Warden(undefined).redact('a@b.io').redacted, '<USER_EMAIL>');
});

describe('name tables: the separately loaded asset warden-names.bin', () => {
  const PEOPLE = { version: 'v1', detect_extra: ['person', 'street_address'] };
  const TEXT = 'Dear Ms. Okafor, we ship to 742 Evergreen Terrace, Springfield, IL 62704 today.';

  test('a policy looking for names needs them, and the error names the asset', () => {
    throwsWarden(() => new Warden({ policy: PEOPLE }), 'invalid_options', /warden-names\.bin/);
    assert.throws(() => new Warden({ policy: PEOPLE }), (e) => e.field === 'nameTables');
    // Addresses need no name tables.
    const w = new Warden({ policy: { version: 'v1', detect_extra: ['street_address'] } });
    assert.equal(w.redact(TEXT).redacted, 'Dear Ms. Okafor, we ship to <ADDRESS> today.');
    // Nor does a request policy without person; one with person is refused as the server refuses it.
    const plain = new Warden();
    const request = { tool: 'web.chat', raw_text: TEXT, policy_config: { ...PEOPLE, defaults: { ingress: { action: 'redact' } } } };
    throwsWarden(() => plain.precheck(request), 'invalid_request', /warden-names\.bin/);
  });

  test('loaded, names are found as the native engine finds them', async () => {
    const nameTables = await loadNameTables();
    assert.ok(nameTables instanceof Uint8Array && nameTables.length > 100_000);
    const w = new Warden({ policy: PEOPLE, nameTables });
    assert.equal(w.redact(TEXT).redacted, 'Dear Ms. <PERSON>, we ship to <ADDRESS> today.');
    // No cue word: only the name lists tell that these two words are a name.
    assert.equal(w.redact('Escalated by Maria Fernandez yesterday.').redacted, 'Escalated by <PERSON> yesterday.');
    // An ArrayBuffer does as well as a Uint8Array, and the path form of the loader reads the same file.
    const again = new Warden({ policy: PEOPLE, nameTables: nameTables.slice().buffer });
    assert.equal(again.redact(TEXT).redacted, 'Dear Ms. <PERSON>, we ship to <ADDRESS> today.');
    const byPath = await loadNameTables(join(ROOT, 'dist', 'warden-wasm', 'warden-names.bin'));
    assert.deepEqual(byPath, nameTables);
    // A policy without person ignores the tables.
    assert.equal(new Warden({ nameTables }).precheck({ tool: 'web.chat', raw_text: 'hi Maria' }).decision, 'allow');
  });

  test('bad tables are a WardenError naming the option, never a trap', async () => {
    const nameTables = await loadNameTables();
    const bad = [
      [new Uint8Array([1, 2, 3]), /nameTables.*not a Warden name-table asset/],
      [nameTables.subarray(0, 5000), /nameTables.*first_names: truncated/],
      [Uint8Array.from(nameTables, (b, i) => (i === 40 ? 0x41 : b)), /nameTables.*first_names line/],
      ['warden-names.bin', /nameTables.*Uint8Array/],
      [[1, 2, 3], /nameTables.*Uint8Array/],
    ];
    for (const [tables, pattern] of bad) {
      throwsWarden(() => new Warden({ policy: PEOPLE, nameTables: tables }), 'invalid_options', pattern);
    }
    // The module still works.
    assert.equal(new Warden({ policy: PEOPLE, nameTables }).redact('Dear Mr. Okafor').redacted, 'Dear Mr. <PERSON>');
  });
});

test('invalid requests throw a WardenError mirroring the HTTP error', () => {
  const w = new Warden({ piiTokenSalt: 's' });
  throwsWarden(() => w.precheck(), 'invalid_request', /required/);
  throwsWarden(() => w.precheck(null), 'invalid_request', /JSON object/);
  throwsWarden(() => w.precheck('text'), 'invalid_request');
  throwsWarden(() => w.postcheck({ tool: 't' }), 'invalid_request', /raw_text/);
  throwsWarden(() => w.precheck({ tool: 1, raw_text: 'x' }), 'invalid_request', /tool/);
  throwsWarden(() => w.precheck({ tool: 't', raw_text: 'x', n: 1n }), 'invalid_request', /BigInt/);
  throwsWarden(() => w.evaluate({ payload: {} }), 'invalid_request', /agent_id/);
  throwsWarden(() => w.redact(5), 'invalid_request', /string/);
  throwsWarden(() => w.redact({ text: 'a' }), 'invalid_request', /string/);
  try {
    w.precheck({ tool: 't' });
  } catch (e) {
    assert.equal(e.status, 422);
    assert.equal(e.field, 'raw_text');
  }
  const deep = JSON.parse('['.repeat(5000) + ']'.repeat(5000));
  throwsWarden(() => w.evaluate({ agent_id: 'a', payload: deep }), 'invalid_request');
  // Still alive and correct after all of that.
  assert.equal(w.redact('ssn 123-45-6789').redacted, 'ssn <USER_SSN>');
});

test('large and unusual text is handled, never trapping', () => {
  const w = new Warden({ piiTokenSalt: 's' });
  const big = 'x'.repeat(2_000_000) + ' bob@corp.io';
  assert.equal(w.redact(big).matches.length, 1);
  const odd = '\u0000\uFFFF\uD83D\uDE00 lone \uD800 surrogate a@b.io';
  assert.equal(w.redact(odd).matches[0].type, 'email_address');
  assert.equal(w.precheck({ tool: 't', raw_text: '' }).decision, 'allow');
});

test('the package.json exports map the node condition to the auto-initialising entry', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'dist', 'warden-wasm', 'package.json'), 'utf8'));
  assert.equal(pkg.exports['.'].node, './node.js');
  assert.equal(pkg.exports['.']['edge-light'], './edge.js');
  assert.equal(pkg.type, 'module');
  assert.ok(readFileSync(join(ROOT, 'dist', 'warden-wasm', 'warden_wasm.d.ts'), 'utf8').includes('export interface CheckResponse'));
  assert.ok(CORPUS);
});

describe('streaming: warden.governStream over a streaming upstream (loopback)', () => {
  let upstream;
  const w = new Warden({ policy: STREAM_POLICY, piiTokenSalt: STREAM_SALT });
  before(async () => {
    upstream = await startUpstream();
  });
  after(() => upstream.close());

  const fetchUpstream = (id) => fetch(`${upstream.base}/v1`, { method: 'POST', headers: { 'x-upstream-script': id }, body: '{}' });

  FORMATS.forEach((format, i) => {
    test(`${format}: equals one-shot postcheck, bytes flow before the upstream ends`, async () => {
      for (let round = 0; round < 3; round++) {
        const id = `node-${format}-${round}`;
        const c = streamCase(format, 1000 + 10 * i + round, 4000);
        const { text, pieces } = c;
        assertCutsInside(c);
        upstream.script(id, { format, pieces, pauseAfter: Math.floor(pieces.length * 0.7) });
        const oneShot = w.postcheck({ tool: 'chat.completions', raw_text: text });
        assert.equal(oneShot.decision, 'transform');
        const governed = w.governStream((await fetchUpstream(id)).body, { tool: 'chat.completions', format });
        let before;
        const out = await readStreaming(governed, () => {
          before = !upstream.state(id).finished;
          upstream.release(id);
        });
        assert.equal(before, true, 'governed bytes before the upstream finished');
        assertMatchesOneShot(parseGoverned(format, out, { raw: true }), oneShot, `governStream ${format}`);
        if (format !== 'text') assertMatchesOneShot(parseGoverned(format, out), oneShot, `governStream ${format}`);
        const record = await governed.result;
        assert.equal(record.decision, oneShot.decision);
        assert.deepEqual(record.reasons, oneShot.reasons);
        assert.ok(Object.values(record.pii_counts).reduce((a, b) => a + b, 0) > 0);
      }
    });

    test(`${format}: a deny ends the stream with the record and cancels the upstream`, async () => {
      const id = `node-deny-${format}`;
      const { text, pieces } = denyCase(format, 2000 + i);
      assert.equal(w.postcheck({ tool: 'hr.lookup', raw_text: text }).decision, 'deny');
      upstream.script(id, { format, pieces, pauseAfter: Math.floor(pieces.length * 0.9) });
      const governed = w.governStream((await fetchUpstream(id)).body, { tool: 'hr.lookup', format });
      const reader = governed.getReader();
      let out = '';
      let error;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          out += Buffer.from(value).toString('utf8');
        }
      } catch (e) {
        error = e;
      }
      if (format === 'text') {
        assert.equal(error?.name, 'WardenError');
        assert.equal(error.code, 'denied');
        assert.equal(error.record.decision, 'deny');
        assertDenied(format, out, 'governStream text', { raw: true });
        // The text released before the window that denied is kept (not dropped by the error).
        assert.ok(out.length > 0, 'the text released before the card is kept');
      } else {
        assert.equal(error, undefined);
        assertDenied(format, out, `governStream ${format}`);
      }
      assert.equal((await governed.result).decision, 'deny');
      for (let n = 0; n < 100 && !upstream.state(id).cutOff; n++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(upstream.state(id).cutOff && !upstream.state(id).finished, 'the upstream was cut off');
    });
  });

  test('governTransform pipes like a TransformStream; chunks may be strings', async () => {
    const text = 'mail bob@corp.io, call +44 20 7946 0958 — naïve 日本語 👋🏽';
    const source = new ReadableStream({
      start(c) {
        for (const ch of Array.from(text)) c.enqueue(ch);
        c.close();
      },
    });
    const t = w.governTransform({ tool: 'chat.completions' });
    const out = await new Response(source.pipeThrough(t)).text();
    assert.equal(out, w.postcheck({ tool: 'chat.completions', raw_text: text }).raw_text_out);
    assert.equal((await t.result).decision, 'transform');
  });

  test('bad arguments throw; invalid UTF-8 stops with an error record', async () => {
    throwsWarden(() => w.governStream(new Response('x').body, { tool: 't', format: 'xml' }), 'invalid_request', /format/);
    throwsWarden(() => w.governStream(new Response('x').body, { tool: '' }), 'invalid_request', /tool/);
    assert.throws(() => w.governStream('text', { tool: 't' }), TypeError);
    const bad = w.governStream(new Response(new Uint8Array([0x6f, 0x6b, 0xff, 0x0a])).body, { tool: 't', format: 'ndjson' });
    const parsed = parseGoverned('ndjson', await new Response(bad).text());
    assert.equal(parsed.record.decision, 'deny');
    assert.equal(parsed.record.error.code, 'invalid_request');
    const text = w.governStream(new Response(new Uint8Array([0x6f, 0x6b, 0xff])).body, { tool: 't' });
    await assert.rejects(new Response(text).text());
    assert.equal((await text.result).error.code, 'invalid_request');
  });

  test('a cancelled governed stream rejects result and cancels the upstream', async () => {
    const id = 'node-cancel';
    const { pieces } = streamCase('openai', 3000, 4000);
    upstream.script(id, { format: 'openai', pieces, pauseAfter: 50 });
    const governed = w.governStream((await fetchUpstream(id)).body, { tool: 'chat.completions', format: 'openai' });
    const reader = governed.getReader();
    await reader.cancel(new Error('client went away'));
    await assert.rejects(governed.result);
    upstream.release(id);
    for (let n = 0; n < 100 && !upstream.state(id).cutOff; n++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(upstream.state(id).cutOff, 'the upstream was cut off');
  });
});

describe('streaming: POST /api/v1/postcheck/stream through handleRequest (node:http)', () => {
  let server;
  let streamBase;
  const sw = new Warden({ policy: STREAM_POLICY, piiTokenSalt: STREAM_SALT });
  before(async () => {
    server = createServer(async (req, res) => {
      // The request body streams in (no buffering), and the response streams out.
      const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Readable.toWeb(req);
      const request = new Request(`http://127.0.0.1${req.url}`, {
        method: req.method,
        headers: Object.entries(req.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
        body,
        duplex: 'half',
      });
      const response = await handleRequest(sw, request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body) for await (const chunk of response.body) res.write(chunk);
      res.end();
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    streamBase = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => new Promise((r) => server.close(r)));
  for (const [name, check] of streamingHttpChecks(4000)) test(name, () => check({ base: streamBase }));

  test('the route answers exactly what governStream gives (but the request id)', async () => {
    for (const format of ['openai', 'anthropic', 'ndjson']) {
      const { pieces } = streamCase(format, 5000, 2000);
      const res = await streamPost(`${streamBase}/api/v1/postcheck/stream?tool=chat.completions&format=${format}`, pieces);
      const api = await new Response(sw.governStream(new Blob(pieces).stream(), { tool: 'chat.completions', format })).text();
      assert.equal(res.text.replace(/,"request_id":"[^"]*"/, ''), api, format);
    }
  });
});

describe('reversible tokens (tests/conformance/tokens)', () => {
  const dir = join(CORPUS, 'tokens');
  const cases = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const list = (v) => (v ? v.split(',') : undefined);
  const wardenForEnv = (env) =>
    new Warden({
      policy: env.POLICY_FILE ? readFileSync(join(dir, env.POLICY_FILE), 'utf8') : undefined,
      piiTokenSalt: env.PII_TOKEN_SALT,
      apiKeys: list(env.WARDEN_API_KEYS),
      encryptKeys: list(env.WARDEN_ENCRYPT_KEYS),
      detokenizeKeys: list(env.WARDEN_DETOKENIZE_KEYS),
      requestPolicy: env.WARDEN_REQUEST_POLICY,
    });
  // `expect` is a subset of the answer: objects key by key, the rest exactly.
  const assertSubset = (want, got, where) => {
    if (want && typeof want === 'object' && !Array.isArray(want)) {
      for (const [k, v] of Object.entries(want)) assertSubset(v, got?.[k], `${where}.${k}`);
    } else {
      assert.deepEqual(got, want, where);
    }
  };
  for (const c of cases) {
    test(`${c.name} (handleRequest)`, async () => {
      const w = wardenForEnv(c.env);
      const headers = c.api_key ? { 'x-governs-key': c.api_key } : {};
      const response = await handleRequest(
        w,
        new Request(`http://127.0.0.1/api/v1/${c.endpoint}`, { method: 'POST', headers, body: JSON.stringify(c.request) }),
      );
      assert.equal(response.status, c.status, c.name);
      assertSubset(c.expect, await response.json(), c.name);
    });
    if (c.status === 200) {
      test(`${c.name} (JS API)`, () => {
        const w = wardenForEnv(c.env);
        const api = { precheck: w.precheck, postcheck: w.postcheck, detokenize: w.detokenize }[c.endpoint];
        assertSubset(c.expect, api.call(w, c.request), c.name);
      });
    }
  }
});

// Issue 15: the fast path of precheck / postcheck (strings in, one number out) must answer
// exactly what the JSON path answers, for every conformance request it takes.
test('the fast path answers exactly what the JSON path answers', () => {
  for (const d of DEPLOYMENTS) {
    const w = wardenFor(d);
    const base = Object.getPrototypeOf(Object.getPrototypeOf(w));
    for (const [file, c] of d.cases) {
      const op = c.endpoint === 'postcheck' ? 'postcheck' : 'precheck';
      const fast = w[op](c.request);
      // The wasm-bindgen method: every request through JSON.
      const slow = base[op].call(w, JSON.parse(JSON.stringify(c.request)));
      assert.deepEqual({ ...fast, ts: 0 }, { ...slow, ts: 0 }, `[${file}] ${c.name}`);
      assert.ok(Math.abs(fast.ts - slow.ts) <= 1);
    }
  }
  const w = wardenFor(DEPLOYMENTS[0]);
  // Reasons holding the packing's own separator and non-ASCII text survive the packing.
  const odd = w.precheck({ tool: 'r:m\n1:x', raw_text: 'naïve 😀 text, SSN 123-45-6789', scope: 'net.external', corr_id: null, user_id: 'ü' });
  const slow = Object.getPrototypeOf(Object.getPrototypeOf(w)).precheck.call(w, { tool: 'r:m\n1:x', raw_text: 'naïve 😀 text, SSN 123-45-6789', scope: 'net.external', user_id: 'ü' });
  assert.deepEqual({ ...odd, ts: 0 }, { ...slow, ts: 0 });
  // Lone surrogates become U+FFFD on both paths.
  assert.equal(w.precheck({ tool: 't', raw_text: 'a\ud800b' }).raw_text_out, 'a\ufffdb');
});

test('precheckText / postcheckText: decision and text only', () => {
  const w = wardenFor(DEPLOYMENTS[0]);
  const text = 'Email jane@example.com, SSN 123-45-6789';
  const full = w.precheck({ tool: 'verify_identity', raw_text: text });
  assert.deepEqual(w.precheckText('verify_identity', text), { decision: full.decision, text: full.raw_text_out });
  assert.deepEqual(w.precheckText('python.exec', 'x'), { decision: 'deny', text: null });
  assert.deepEqual(w.postcheckText('t', 'nothing here'), { decision: 'allow', text: 'nothing here' });
  assert.throws(() => w.precheckText('t', 5), (e) => e.name === 'WardenError' && e.field === 'raw_text');
});

/** 200 concurrent purchases of $0.01 (+ 1 token of gpt-4) by one user with a $1.00 limit,
 * as the server's no-overspend test: exactly 89 fit under 90 %, the rest need confirmation. */
async function fireBudget(w, user) {
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      w.run('precheck', { tool: 'shop.buy', raw_text: 'buy', user_id: user, corr_id: `c${i}`, tool_config: { metadata: { purchase_amount: 0.01 } } }),
    ),
  );
  const count = (d) => results.filter((r) => r.decision === d).length;
  assert.deepEqual([count('allow'), count('confirm')], [89, 111]);
  assert.ok(Math.max(...results.map((r) => r.budget_status.currentSpend)) <= 1.0);
  const status = await w.run('precheck', { tool: 'shop.buy', raw_text: '', user_id: user });
  assert.ok(Math.abs(status.budget_status.currentSpend - 0.89267) < 1e-9, JSON.stringify(status));
}

test('budgets: the in-memory store never overspends under 200 concurrent spends', async () => {
  const w = new Warden({ piiTokenSalt: 's', budgetStore: 'memory', budgetDefaultLimit: 1 });
  await fireBudget(w, 'buyer');
  // Without a user_id nothing is charged; the sync API does not touch budgets.
  assert.equal((await w.run('precheck', { tool: 'shop.buy', raw_text: 'x' })).budget_status, undefined);
  assert.equal(w.precheck({ tool: 'shop.buy', raw_text: 'x', user_id: 'buyer' }).budget_status, undefined);
});

test('budgets: a JS store (get / compareAndSet) never overspends, also across isolates', async () => {
  const { MemoryLedgerStore } = await import('warden-wasm');
  const store = new MemoryLedgerStore();
  const w = new Warden({ piiTokenSalt: 's', budgetStore: store, budgetDefaultLimit: 1 });
  await fireBudget(w, 'buyer');
  const ledger = JSON.parse((await store.get('buyer')).value);
  assert.equal(ledger.transactions.length, 100); // the ledger keeps the newest 100
  // Two Wardens on one store stand for two isolates: their compare-and-sets race, losers retry.
  const shared = new MemoryLedgerStore();
  const slow = {
    get: (u) => shared.get(u),
    compareAndSet: async (u, v, value) => {
      await new Promise((r) => setTimeout(r, Math.random() * 2));
      return shared.compareAndSet(u, v, value);
    },
  };
  const a = new Warden({ piiTokenSalt: 's', budgetStore: slow, budgetDefaultLimit: 1 });
  const b = new Warden({ piiTokenSalt: 's', budgetStore: slow, budgetDefaultLimit: 1 });
  // $0.05 purchases on $1.00: 17 fit under 90 % (17 × $0.05003 = $0.85051), the rest need confirmation.
  const body = { tool: 'shop.buy', raw_text: 'buy', user_id: 'pair', tool_config: { metadata: { purchase_amount: 0.05 } } };
  const both = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).run('precheck', body)));
  assert.deepEqual([both.filter((r) => r.decision === 'allow').length, both.filter((r) => r.decision === 'confirm').length], [17, 23]);
  assert.equal(JSON.parse((await shared.get('pair')).value).purchase, 850_000);
});

test('budgets: a failing or malformed store fails as ON_ERROR says, and bad options are named', async () => {
  const broken = { get: async () => { throw new Error('store down'); }, compareAndSet: async () => true };
  const w = new Warden({ piiTokenSalt: 's', budgetStore: broken });
  const r = await w.run('precheck', { tool: 'shop.buy', raw_text: 'buy', user_id: 'u' });
  assert.equal(r.decision, 'deny', JSON.stringify(r)); // ON_ERROR=block: fail closed
  const odd = new Warden({ piiTokenSalt: 's', budgetStore: { get: async () => 5, compareAndSet: async () => true }, onError: 'pass' });
  assert.equal((await odd.run('precheck', { tool: 'shop.buy', raw_text: 'buy', user_id: 'u' })).decision, 'allow');
  for (const budgetStore of [{}, 'redis', 5]) {
    assert.throws(() => new Warden({ budgetStore }), (e) => e.name === 'WardenError' && e.field === 'budgetStore');
  }
  assert.throws(() => new Warden({ onDecision: 'no' }), (e) => e.field === 'onDecision');
  await assert.rejects(w.run('explode', {}), (e) => e.name === 'WardenError' && e.field === 'operation');
  await assert.rejects(w.run('precheck', { tool: 't' }), (e) => e.status === 422 && e.field === 'raw_text');
});

test('onDecision: one decision.v1 event per run / handle, without raw text; a throwing hook changes nothing', async () => {
  const events = [];
  const w = new Warden({ piiTokenSalt: 's', onDecision: (e) => events.push(e) });
  const r = await w.run('precheck', { tool: 'verify_identity', raw_text: 'SSN 123-45-6789', corr_id: 'ev-1' });
  const response = await handleRequest(w, new Request('http://x/api/v1/postcheck', { method: 'POST', body: JSON.stringify({ tool: 't', raw_text: 'a@b.io' }) }));
  assert.equal(response.status, 200);
  assert.equal(events.length, 2);
  assert.equal(events[0].schema, 'decision.v1');
  assert.equal(events[0].data.decision, r.decision);
  assert.equal(events[0].data.correlationId, 'ev-1');
  assert.equal(events[1].data.direction, 'egress');
  assert.ok(!JSON.stringify(events).includes('123-45-6789'));
  for (const hook of [() => { throw new Error('boom'); }, async () => { throw new Error('async boom'); }]) {
    const h = new Warden({ piiTokenSalt: 's', onDecision: hook });
    assert.equal((await h.run('precheck', { tool: 't', raw_text: 'x' })).decision, 'allow');
  }
});
