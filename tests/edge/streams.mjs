// Streaming postcheck on the edge (issue 16), shared by the edge harnesses: a local AI
// upstream on loopback that streams OpenAI SSE, Anthropic SSE, NDJSON and text in small,
// randomly split chunks (cuts inside multi-byte characters and inside PII values), parsers of
// the governed output, and the checks every runtime runs: the governed text equals one-shot
// postcheck of the whole text with the same decision and reasons, governed bytes arrive
// before the upstream has finished, and a deny ends the stream with the record.
import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';

/** The policy of the streaming deployments (WARDEN_POLICY / `policy`). */
export const STREAM_POLICY = `
version: v1
tool_access:
  chat.completions:
    direction: egress
    action: redact
    allow_pii:
      PII:phone_number: tokenize
      PII:email_address: redact
  hr.lookup:
    direction: egress
    action: tokenize
    allow_pii:
      PII:credit_card: deny
defaults:
  ingress: { action: redact }
`;

export const STREAM_SALT = 'stream-salt';
export const STREAM_ENV = { PII_TOKEN_SALT: STREAM_SALT, WARDEN_POLICY: STREAM_POLICY };
export const FORMATS = ['openai', 'anthropic', 'ndjson', 'text'];

/** Deterministic generator (xorshift), so a failure names a seed that reproduces it. */
export function rng(seed) {
  let s = BigInt(seed) | 1n;
  const next = () => {
    s ^= (s << 13n) & 0xffffffffffffffffn;
    s ^= s >> 7n;
    s ^= (s << 17n) & 0xffffffffffffffffn;
    return Number(s & 0xffffffffn);
  };
  return { below: (n) => next() % n, pick: (xs) => xs[next() % xs.length] };
}

const WORDS = ['the', 'answer', 'is', 'café', 'naïve', 'Zürich', '日本語', 'テキスト', '👋🏽', 'ok', 'résumé', 'data', 'señor', '€42', 'line\n'];
const PII = ['bob@corp.io', 'alice.smith@example.com', '+44 20 7946 0958', '(212) 555-0147', '123-45-6789', '4111 1111 1111 1111'];

/** A text of about `size` bytes with PII values and multi-byte characters throughout. */
export function aiText(r, size = 3000, pii = PII.slice(0, 5)) {
  let t = '';
  while (Buffer.byteLength(t) < size) t += (r.below(9) === 0 ? `contact ${r.pick(pii)}` : r.pick(WORDS)) + (r.below(5) ? ' ' : '. ');
  return t;
}

/** `text` cut into deltas of 1..`max` characters (whole code points, as an AI API sends). */
export function deltas(r, text, max = 12) {
  const chars = Array.from(text);
  const out = [];
  for (let i = 0; i < chars.length; ) {
    const n = 1 + r.below(max);
    out.push(chars.slice(i, i + n).join(''));
    i += n;
  }
  return out;
}

/** The upstream's body for `format`, carrying the text `parts` as its deltas. */
export function upstreamBody(format, parts) {
  const sse = (event, data) => `${event ? `event: ${event}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
  switch (format) {
    case 'openai': {
      const chunk = (delta, finish = null) => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] });
      return [sse(null, chunk({ role: 'assistant', content: '' })), ...parts.map((p) => sse(null, chunk({ content: p }))), sse(null, chunk({}, 'stop')), 'data: [DONE]\n\n'].join('');
    }
    case 'anthropic':
      return [
        sse('message_start', { type: 'message_start', message: { id: 'msg_1', role: 'assistant', content: [] } }),
        sse('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
        sse('ping', { type: 'ping' }),
        ...parts.map((p) => sse('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } })),
        sse('content_block_stop', { type: 'content_block_stop', index: 0 }),
        sse('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' } }),
        sse('message_stop', { type: 'message_stop' }),
      ].join('');
    case 'ndjson':
      // Ollama's chat stream: the text at /message/content, a last line without it.
      return parts.map((p) => `${JSON.stringify({ model: 'm', message: { role: 'assistant', content: p }, done: false })}\n`).join('') + `${JSON.stringify({ model: 'm', done: true })}\n`;
    case 'text':
      return parts.join('');
    default:
      throw new Error(`format ${format}`);
  }
}

export const CONTENT_TYPES = { openai: 'text/event-stream', anthropic: 'text/event-stream', ndjson: 'application/x-ndjson', text: 'text/plain; charset=utf-8' };

/** `bytes` cut into pieces of 1..`max` bytes. */
export function splitBytes(r, bytes, max = 17) {
  const out = [];
  for (let i = 0; i < bytes.length; ) {
    const n = 1 + r.below(max);
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

/**
 * Asserts that the byte cuts between `pieces` fall inside multi-byte characters, and that the
 * cuts between the text's deltas (`parts`; for text the byte cuts too) fall inside PII values.
 */
export function assertCutsInside({ pieces, parts, text }) {
  const all = Buffer.concat(pieces.map((p) => Buffer.from(p)));
  const cutsOf = (sizes) => {
    const cuts = [];
    let at = 0;
    for (const n of sizes.slice(0, -1)) cuts.push((at += n));
    return cuts;
  };
  const byteCuts = cutsOf(pieces.map((p) => p.length));
  const insideChar = byteCuts.filter((c) => (all[c] & 0xc0) === 0x80).length;
  const bytes = Buffer.from(text);
  const textCuts = cutsOf(parts.map((p) => Buffer.byteLength(p)));
  let insideValue = 0;
  for (const v of PII.filter((x) => text.includes(x)).map((x) => Buffer.from(x))) {
    for (let i = bytes.indexOf(v); i >= 0; i = bytes.indexOf(v, i + 1)) insideValue += textCuts.filter((c) => c > i && c < i + v.length).length;
  }
  assert.ok(insideChar > 0 && insideValue > 0, `cuts inside characters: ${insideChar}, inside PII values: ${insideValue}`);
}

/** Splits SSE text into events: [{event, data}]. */
function sseEvents(text) {
  return text
    .split('\n\n')
    .filter((e) => e.trim() !== '')
    .map((e) => {
      const lines = e.split('\n');
      const field = (name) => lines.filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).replace(/^ /, ''));
      return { event: field('event')[0], data: field('data').join('\n') };
    });
}

/**
 * The governed text and the record of a governed output (`raw`: governStream's text format,
 * the text itself). Asserts the framing: the record last, then only the terminator.
 */
export function parseGoverned(format, out, { raw = false } = {}) {
  if (format === 'text' && raw) return { text: out, record: undefined, terminated: true };
  if (format === 'text' || format === 'ndjson') {
    const lines = out.split('\n');
    assert.equal(lines.pop(), '', 'ends with a newline');
    const values = lines.map((l) => JSON.parse(l));
    const last = values.pop();
    assert.ok(last?.warden, `the record is the last line: ${JSON.stringify(last)}`);
    assert.ok(!values.some((v) => v.warden), 'one record');
    const text = values.map((v) => (format === 'text' ? v.text : (v.message?.content ?? ''))).join('');
    return { text, record: last.warden, terminated: true };
  }
  const events = sseEvents(out);
  const at = events.findIndex((e) => e.event === 'warden');
  assert.ok(at >= 0, `an event: warden record in ${JSON.stringify(out.slice(-400))}`);
  const record = JSON.parse(events[at].data);
  const after = events.slice(at + 1);
  const text = events
    .slice(0, at)
    .map((e) => {
      if (format === 'openai') return e.data === '[DONE]' ? '' : (JSON.parse(e.data).choices?.[0]?.delta?.content ?? '');
      const d = JSON.parse(e.data);
      return d.type === 'content_block_delta' && d.delta?.type === 'text_delta' ? d.delta.text : '';
    })
    .join('');
  if (record.decision === 'deny') assert.deepEqual(after, [], 'nothing after a deny record');
  else if (format === 'openai') assert.deepEqual(after, [{ event: undefined, data: '[DONE]' }]);
  else assert.deepEqual(after.map((e) => e.event), ['message_stop']);
  return { text, record, terminated: after.length > 0 };
}

/** Asserts that a governed output matches one-shot postcheck of the whole text. */
export function assertMatchesOneShot(parsed, oneShot, where) {
  assert.equal(parsed.text, oneShot.raw_text_out, `${where}: governed text`);
  if (parsed.record) {
    assert.equal(parsed.record.decision, oneShot.decision, `${where}: decision`);
    assert.deepEqual(parsed.record.reasons, oneShot.reasons, `${where}: reasons`);
    assert.equal(parsed.record.policy_id, oneShot.policy_id, `${where}: policy_id`);
  }
}

/**
 * A local AI API on loopback. `script(id, {format, pieces, pauseAfter})` sets what a
 * request with the header `x-upstream-script: <id>` gets: `pieces` (Uint8Array) written one by one; after `pauseAfter` of
 * them it waits for `release(id)` (or 20 s) — so a test can see governed bytes arrive while
 * the upstream is still sending. `state(id)` tells whether it finished or was cut off, and
 * what request body and path it got.
 */
export async function startUpstream() {
  const scripts = new Map();
  const server = createServer(async (req, res) => {
    const s = scripts.get(req.headers['x-upstream-script']);
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (!s) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no script"}');
      return;
    }
    s.request = { url: req.url, body: Buffer.concat(chunks).toString('utf8'), headers: req.headers };
    res.on('close', () => {
      if (!s.finished) s.cutOff = true;
    });
    res.writeHead(200, { 'content-type': s.contentType ?? CONTENT_TYPES[s.format], 'cache-control': 'no-cache' });
    for (let i = 0; i < s.pieces.length; i++) {
      if (res.destroyed) return;
      if (i === s.pauseAfter) await Promise.race([s.released, new Promise((r) => setTimeout(r, 20_000))]);
      res.write(s.pieces[i]);
      // Each piece on its own: a real event loop turn between writes.
      await new Promise((r) => setImmediate(r));
    }
    s.finished = true;
    res.end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    script(id, s) {
      let release;
      const released = new Promise((r) => (release = r));
      scripts.set(id, { ...s, released, release, finished: false, cutOff: false });
    },
    release: (id) => scripts.get(id)?.release(),
    state: (id) => scripts.get(id),
    close: () => new Promise((r) => server.close(r)),
  };
}

/**
 * Reads a streamed response body; `onFirst` runs when the first bytes arrive (before the
 * rest is read). Returns the body as text.
 */
export async function readStreaming(body, onFirst) {
  const reader = body.getReader();
  const parts = [];
  let first = true;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (value.length && first) {
      first = false;
      onFirst?.();
    }
    parts.push(Buffer.from(value));
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * POSTs `pieces` as a chunked request body (node:http, one write per piece, pausing after
 * `pauseAfter` until the first response bytes arrive or 10 s pass) and reads the streamed
 * answer. `respondedEarly`: response bytes arrived while the body was still being sent.
 */
export function streamPost(url, pieces, { pauseAfter = Infinity, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    let bodyDone = false;
    let responseDone = false;
    let respondedEarly = false;
    let gotFirst;
    const first = new Promise((r) => (gotFirst = r));
    // A fresh connection each time: after a deny the server answers before reading the whole
    // body, which leaves a kept-alive connection unusable for the next request.
    const req = httpRequest(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream', ...headers } }, (res) => {
      const parts = [];
      res.on('data', (d) => {
        if (d.length && !bodyDone && parts.length === 0) respondedEarly = true;
        parts.push(d);
        gotFirst();
      });
      res.on('end', () => {
        responseDone = true;
        resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(parts).toString('utf8'), respondedEarly });
      });
      res.on('error', reject);
    });
    // Writing after the server answered (and closed) fails; the answer is what counts then.
    req.on('error', (e) => (responseDone ? undefined : reject(e)));
    (async () => {
      for (let i = 0; i < pieces.length && !responseDone; i++) {
        if (i === pauseAfter) await Promise.race([first, new Promise((r) => setTimeout(r, 10_000))]);
        if (!req.write(pieces[i])) await new Promise((r) => req.once('drain', r));
        await new Promise((r) => setImmediate(r));
      }
      bodyDone = true;
      req.end();
    })().catch(reject);
  });
}

/** The upstream pieces of one streaming case: [format, text, pieces] for `seed`. */
export function streamCase(format, seed, size = 3000) {
  const r = rng(seed);
  const text = aiText(r, size);
  const parts = deltas(r, text);
  const body = Buffer.from(upstreamBody(format, parts));
  return { text, parts, pieces: splitBytes(r, body) };
}

/** A deny case: prose, then a card number the `hr.lookup` rule denies, then more. */
export function denyCase(format, seed) {
  const r = rng(seed);
  const text = `${aiText(r, 2500, ['bob@corp.io'])} card 4111 1111 1111 1111 ${aiText(r, 1500, ['bob@corp.io'])}`;
  const body = Buffer.from(upstreamBody(format, deltas(r, text)));
  return { text, pieces: splitBytes(r, body) };
}

/** Checks a deny: the record is last with decision deny; no card digits were released. */
export function assertDenied(format, out, where, { raw = false } = {}) {
  assert.ok(!out.includes('4111'), `${where}: no card digits released`);
  if (raw) return;
  const parsed = parseGoverned(format, out);
  assert.equal(parsed.record.decision, 'deny', `${where}: record decision`);
  assert.ok(parsed.record.reasons.some((x) => x.includes('credit_card')), `${where}: reasons ${parsed.record.reasons}`);
  assert.equal(parsed.terminated, format === 'text' || format === 'ndjson', `${where}: no terminator after a deny`);
}

/**
 * The HTTP checks of `POST /api/v1/postcheck/stream` against `base` (a deployment with
 * STREAM_ENV) and, when `upstream` is given, of the AI proxy route `/api/ai/<id>/...`, for
 * every format: equal to one-shot `/api/v1/postcheck`, bytes before the end, deny.
 * `requestStreams: false` for a runtime that buffers request bodies before the route runs
 * (`next start`): the answer cannot begin before the body has ended there.
 */
export function streamingHttpChecks(seed0, { requestStreams = true, resend = false } = {}) {
  const checks = [];
  // `resend` (wrangler dev): after a stream that stopped reading its request body (a deny),
  // the local runtime may recycle the worker and answer the next request with "Your worker
  // restarted mid-request" (or drop it); that request is sent once more, and says so.
  const again = async (what, send) => {
    try {
      const res = await send();
      const text = res.text ?? '';
      if (!(resend && res.status === 503 && text.includes('Your worker restarted mid-request'))) return res;
    } catch (e) {
      if (!resend) throw e;
    }
    console.log(`# ${what}: the local runtime restarted the worker; sent again`);
    return send();
  };
  const oneShotOf = async (base, headers, text) => {
    const res = await again('one-shot postcheck', async () => {
      const r = await fetch(`${base}/api/v1/postcheck`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ tool: 'chat.completions', raw_text: text }) });
      return { status: r.status, text: await r.text() };
    });
    return JSON.parse(res.text);
  };
  FORMATS.forEach((format, i) => {
    checks.push([
      `POST /api/v1/postcheck/stream?format=${format}: equals one-shot postcheck; bytes before the body ends`,
      async ({ base, headers = {} }) => {
        const c = streamCase(format, seed0 + i, 4000);
        const { text, pieces } = c;
        assertCutsInside(c);
        const oneShot = await oneShotOf(base, headers, text);
        assert.equal(oneShot.decision, 'transform');
        const res = await again('stream', () => streamPost(`${base}/api/v1/postcheck/stream?tool=chat.completions&format=${format}`, pieces, { pauseAfter: Math.floor(pieces.length * 0.7), headers }));
        assert.equal(res.status, 200, res.text.slice(0, 300));
        assert.match(String(res.headers['content-type']), format === 'openai' || format === 'anthropic' ? /^text\/event-stream/ : /^application\/x-ndjson/);
        assertMatchesOneShot(parseGoverned(format, res.text), oneShot, `route ${format}`);
        if (requestStreams) assert.ok(res.respondedEarly, `${format}: governed bytes arrived before the request body ended`);
      },
    ]);
    checks.push([
      `POST /api/v1/postcheck/stream?format=${format}: a deny ends the stream with the record`,
      async ({ base, headers = {} }) => {
        const { pieces } = denyCase(format, seed0 + 10 + i);
        // Paused at 90 % (for good: the deny comes before) so the stop is seen while sending.
        const res = await again('stream', () => streamPost(`${base}/api/v1/postcheck/stream?tool=hr.lookup&format=${format}`, pieces, { headers, pauseAfter: Math.floor(pieces.length * 0.9) }));
        assert.equal(res.status, 200, res.text.slice(0, 300));
        assertDenied(format, res.text, `route ${format}`);
      },
    ]);
  });
  checks.push([
    'POST /api/v1/postcheck/stream: bad parameters are 4xx JSON before streaming',
    async ({ base, headers = {} }) => {
      const res = await again('bad parameters', async () => {
        const r = await fetch(`${base}/api/v1/postcheck/stream?tool=t&format=xml`, { method: 'POST', body: 'x', headers });
        return { status: r.status, text: await r.text() };
      });
      assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
      assert.equal(typeof JSON.parse(res.text).error.code, 'string');
    },
  ]);
  return checks;
}

/** The AI proxy checks (Vercel route /api/ai/*), against an app with STREAM_ENV and WARDEN_AI_UPSTREAM. */
export function proxyChecks(seed0) {
  const checks = [];
  FORMATS.forEach((format, i) => {
    checks.push([
      `AI proxy, ${format} answer: governed as it streams, equal to one-shot postcheck`,
      async ({ base, upstream }) => {
        const id = `ok-${format}-${seed0}`;
        const c = streamCase(format, seed0 + 20 + i, 4000);
        const { text, pieces } = c;
        assertCutsInside(c);
        upstream.script(id, { format, pieces, pauseAfter: Math.floor(pieces.length * 0.7) });
        const oneShot = await (await fetch(`${base}/api/v1/postcheck`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tool: 'chat.completions', raw_text: text }) })).json();
        assert.equal(oneShot.decision, 'transform');
        const res = await fetch(`${base}/api/ai/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-upstream-script': id, ...(format === 'anthropic' ? { 'anthropic-version': '2023-06-01' } : {}) },
          body: JSON.stringify({ messages: [{ role: 'user', content: 'hi, I am bob@corp.io' }] }),
        });
        assert.equal(res.status, 200);
        let before;
        const out = await readStreaming(res.body, () => {
          before = !upstream.state(id).finished;
          upstream.release(id);
        });
        assert.equal(before, true, 'governed bytes arrived before the upstream finished');
        // The request was governed by the middleware before it went upstream.
        assert.ok(upstream.state(id).request.url.endsWith('/chat/completions'), upstream.state(id).request.url);
        assert.ok(!upstream.state(id).request.body.includes('bob@corp.io'), upstream.state(id).request.body);
        if (format === 'text') assert.equal(out, oneShot.raw_text_out);
        else assertMatchesOneShot(parseGoverned(format, out), oneShot, `proxy ${format}`);
      },
    ]);
  });
  for (const format of ['openai', 'text']) {
    checks.push([
      `AI proxy, ${format} answer: a deny ends the stream and stops the upstream`,
      async ({ base, upstream }) => {
        const id = `deny-${format}-${seed0}`;
        const { pieces } = denyCase(format, seed0 + 30);
        // Paused at 90 % until released (never: the deny comes before), so it cannot finish first.
        upstream.script(id, { format, pieces, pauseAfter: Math.floor(pieces.length * 0.9) });
        const res = await fetch(`${base}/api/ai/hr/lookup`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-upstream-script': id }, body: '{"q":"card?"}' });
        assert.equal(res.status, 200);
        // Text has no room for the record: the answer just ends early (cleanly). How much was
        // released before depends on how the upstream's bytes were batched (nothing of the
        // window that denied is released).
        const out = await readStreaming(res.body);
        if (format !== 'text') assertDenied(format, out, `proxy ${format}`);
        assert.ok(!out.includes('4111'));
        // The upstream was stopped, not read to its end.
        for (let i = 0; i < 100 && !upstream.state(id).cutOff; i++) await new Promise((r) => setTimeout(r, 50));
        assert.ok(upstream.state(id).cutOff && !upstream.state(id).finished, 'the upstream was cut off');
      },
    ]);
  }
  return checks;
}
