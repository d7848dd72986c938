// The shared budget store of docs/edge.md ("Budgets, decision hook: `run`") on Upstash Redis:
// the documented code (tests/edge/upstash-budget-store.mjs, quoted verbatim by the doc) with
// the real @upstash/redis client, against tests/edge/upstash-rest.mjs (Upstash's REST protocol)
// in front of a real redis-server, all on loopback. scripts/test-edge starts both and sets:
//   UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN  (read by the store's Redis.fromEnv)
//   WARDEN_TEST_REDIS_URL                             (the redis-server, to read what was stored)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from '@upstash/redis';
import { Warden } from 'warden-wasm';
import { connectRedis } from './upstash-rest.mjs';
import { ROOT } from './common.mjs';

const { UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: token, WARDEN_TEST_REDIS_URL: redisUrl } = process.env;
let raw;
// Users of this run only, so a rerun against the same redis-server starts from nothing.
const run = `${process.pid}-${Date.now()}`;

before(async () => {
  assert.ok(url && token && redisUrl, 'set UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN and WARDEN_TEST_REDIS_URL (scripts/test-edge does)');
  raw = connectRedis(redisUrl);
  await raw.ready;
});
after(() => raw?.close());

/** The documented store, each call a new module instance with its own client: one isolate each. */
let isolates = 0;
async function isolateStore() {
  const { budgetStore } = await import(`./upstash-budget-store.mjs?isolate=${isolates++}`);
  return budgetStore;
}

/** What redis-server holds for `user`, read over RESP (not through the REST server). */
async function stored(user) {
  const [value, version] = await raw.command(['HMGET', `warden:budget:${user}`, 'value', 'version']);
  return { ledger: value && JSON.parse(value.toString('utf8')), version: version && version.toString('utf8') };
}

const spend = (user, amount, i = 0) => ({
  tool: 'shop.buy',
  raw_text: 'buy',
  user_id: user,
  corr_id: `c${i}`,
  tool_config: { metadata: { purchase_amount: amount } },
});

test('docs/edge.md quotes the store file verbatim', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'edge.md'), 'utf8');
  const block = doc.match(/\n {2}```js\n( {2}import \{ Redis \} from '@upstash\/redis';\n[\s\S]*?)\n {2}```\n/);
  assert.ok(block, 'the Upstash block of docs/edge.md');
  const quoted = block[1].split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n') + '\n';
  assert.equal(quoted, readFileSync(new URL('./upstash-budget-store.mjs', import.meta.url), 'utf8'));
});

test('the REST server answers @upstash/redis as Upstash does: commands, pipelines, base64, errors, auth', async () => {
  const redis = new Redis({ url, token }); // the client's defaults: base64 responses, auto-pipelining
  const key = `proto:${run}`;
  const text = 'ledger {"a":1} — €, 日本, 🙂';
  // SET and GET go through /pipeline (auto-pipelining), HGETALL through / (excluded from it).
  assert.deepEqual(await Promise.all([redis.set(key, text), redis.get(key)]), ['OK', text]);
  assert.ok(redis.pipelineCounter >= 1);
  // Text that is valid base64 itself comes back unchanged only if the server encoded it.
  assert.deepEqual(await Promise.all([redis.set(`${key}:b`, 'QUJD'), redis.get(`${key}:b`)]), ['OK', 'QUJD']);
  const encoded = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'upstash-encoding': 'base64' }, body: JSON.stringify(['GET', key]) });
  assert.deepEqual(await encoded.json(), { result: Buffer.from(text).toString('base64') });
  assert.equal(await redis.hset(`${key}:h`, { f: 'v' }), 1);
  assert.deepEqual(await redis.hgetall(`${key}:h`), { f: 'v' });
  assert.equal(await redis.hgetall(`${key}:missing`), null); // an empty HGETALL reads as null
  assert.equal(await redis.eval('return {1, ARGV[1], false}', [], ['x']).then(JSON.stringify), '[1,"x",null]');
  await assert.rejects(redis.incr(key), /not an integer/); // a Redis error inside a pipeline
  await assert.rejects(redis.hgetall(key), /WRONGTYPE/); // and of a single command (400)
  const plain = new Redis({ url, token, responseEncoding: false, enableAutoPipelining: false });
  assert.equal(await plain.get(key), text);
  const wrong = new Redis({ url, token: 'wrong', retry: false });
  await assert.rejects(wrong.get(key), /Unauthorized/);
  const res = await fetch(`${url}/multi-exec`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '[]' });
  assert.equal(res.status, 404); // not implemented: the store does not need it
});

test('the documented store: run("precheck") answers budget_status from Redis', async () => {
  const user = `first-${run}`;
  const w = new Warden({ piiTokenSalt: 's', budgetStore: await isolateStore(), budgetDefaultLimit: 1 });
  const r = await w.run('precheck', spend(user, 0.01));
  assert.equal(r.decision, 'allow', JSON.stringify(r));
  // $0.01 purchase + 1 token of gpt-4 ($0.00003) on $1.00.
  assert.deepEqual(r.budget_status, {
    allowed: true,
    currentSpend: 0.01003,
    limit: 1,
    remaining: 0.98997,
    percentUsed: 1,
    reason: 'budget_check_passed',
  });
  const s = await stored(user);
  assert.equal(s.version, '1');
  assert.deepEqual([s.ledger.purchase, s.ledger.llm, s.ledger.transactions.length], [10_000, 30, 2]);
  const again = await w.run('precheck', spend(user, 0.01, 1));
  assert.equal(again.budget_status.currentSpend, 0.02006);
  assert.equal((await stored(user)).version, '2');
});

test('the documented store: 200 concurrent spends never overspend; a new Warden reads the state back', async () => {
  const user = `buyer-${run}`;
  const w = new Warden({ piiTokenSalt: 's', budgetStore: await isolateStore(), budgetDefaultLimit: 1 });
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => w.run('precheck', spend(user, 0.01, i))));
  const count = (d) => results.filter((r) => r.decision === d).length;
  // As the server's no-overspend test: exactly 89 fit under 90 %, the rest need confirmation.
  assert.deepEqual([count('allow'), count('confirm')], [89, 111]);
  assert.ok(count('allow') * 0.01 <= 1);
  assert.ok(Math.max(...results.map((r) => r.budget_status.currentSpend)) <= 1.0);
  const s = await stored(user);
  assert.equal(s.ledger.purchase, count('allow') * 10_000); // micro-USD: the allowed spends, no more
  assert.equal(s.ledger.transactions.length, 100); // the ledger keeps the newest 100
  // Another isolate (a new client, a new Warden) sees the same spend.
  const later = new Warden({ piiTokenSalt: 's', budgetStore: await isolateStore(), budgetDefaultLimit: 1 });
  const status = await later.run('precheck', { tool: 'shop.buy', raw_text: '', user_id: user });
  assert.ok(Math.abs(status.budget_status.currentSpend - 0.89267) < 1e-9, JSON.stringify(status));
  assert.equal((await later.run('precheck', spend(user, 0.01))).decision, 'confirm');
});

test('the documented store: two Wardens with their own clients race on one Redis without overspending', async () => {
  const user = `pair-${run}`;
  let lost = 0;
  const counted = (store) => ({
    get: (u) => store.get(u),
    compareAndSet: async (u, v, value) => {
      const ok = await store.compareAndSet(u, v, value);
      if (!ok) lost++;
      return ok;
    },
  });
  const a = new Warden({ piiTokenSalt: 's', budgetStore: counted(await isolateStore()), budgetDefaultLimit: 1 });
  const b = new Warden({ piiTokenSalt: 's', budgetStore: counted(await isolateStore()), budgetDefaultLimit: 1 });
  const both = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).run('precheck', spend(user, 0.05, i))));
  // $0.05 purchases on $1.00: 17 fit under 90 % (17 × $0.05003 = $0.85051), the rest need confirmation.
  const allowed = both.filter((r) => r.decision === 'allow').length;
  assert.deepEqual([allowed, both.filter((r) => r.decision === 'confirm').length], [17, 23]);
  assert.equal((await stored(user)).ledger.purchase, allowed * 50_000);
  // Both start by reading the empty ledger, so at least their first writes collide.
  assert.ok(lost > 0, 'the two Wardens never raced');
});

test("why the store turns automaticDeserialization off: the client's default parses the ledger", async () => {
  const user = `parsed-${run}`;
  const w = new Warden({ piiTokenSalt: 's', budgetStore: await isolateStore(), budgetDefaultLimit: 1 });
  assert.equal((await w.run('precheck', spend(user, 0.01))).decision, 'allow');
  const h = await new Redis({ url, token }).hgetall(`warden:budget:${user}`);
  assert.deepEqual([typeof h.value, typeof h.version], ['object', 'number']);
  // A store returning those fails Warden's check of get's answer: ON_ERROR (block) denies.
  const parsing = { get: async () => ({ value: h.value, version: h.version }), compareAndSet: async () => true };
  const r = await new Warden({ piiTokenSalt: 's', budgetStore: parsing }).run('precheck', spend(user, 0.01));
  assert.equal(r.decision, 'deny', JSON.stringify(r));
});
