// Precheck latency in the wasm package under Node.js of the same ~1 KB requests as the native
// twin (adapters/wasm/benches/precheck.rs) and the engine's criterion bench: the three texts
// of tests/corpus/requests_1k.json (no, some, dense PII; tool verify_identity) and
// tests/edge/bench-request.json. Two calls per request: `warden.precheck(object)` (the full
// response object, as the HTTP API answers) and `warden.precheckText(tool, text)` (decision
// and text only). Each sample is the mean of a batch of calls, so that the timer's own cost
// does not count. Prints one JSON line per request.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Warden } from 'warden-wasm';
import { ROOT } from './common.mjs';

const BATCH = 50;
const SAMPLES = 400;

const corpus = JSON.parse(readFileSync(join(ROOT, 'tests', 'corpus', 'requests_1k.json'), 'utf8'));
const bench = JSON.parse(readFileSync(join(ROOT, 'tests', 'edge', 'bench-request.json'), 'utf8'));
const requests = [['bench-request', bench], ...['none', 'some', 'dense'].map((k) => [k, { tool: 'verify_identity', raw_text: corpus[k] }])];
const warden = new Warden({ piiTokenSalt: 'bench-salt' });

function p50(f) {
  for (let i = 0; i < 3_000; i++) f();
  const samples = new Float64Array(SAMPLES);
  for (let s = 0; s < SAMPLES; s++) {
    const t = performance.now();
    for (let i = 0; i < BATCH; i++) f();
    samples[s] = ((performance.now() - t) * 1000) / BATCH;
  }
  samples.sort();
  return +samples[SAMPLES / 2].toFixed(2);
}

for (const [name, request] of requests) {
  const { tool, raw_text: text } = request;
  const decision = warden.precheck(request).decision;
  if (warden.precheckText(tool, text).decision !== decision) throw new Error(`${name}: the two calls disagree`);
  console.log(
    JSON.stringify({
      runtime: `wasm (node ${process.version})`,
      request: name,
      request_bytes: Buffer.byteLength(text),
      decision,
      object_p50_us: p50(() => warden.precheck(request)),
      text_p50_us: p50(() => warden.precheckText(tool, text)),
    }),
  );
}
