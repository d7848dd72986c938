// A loopback stand-in for Upstash's REST endpoint in front of a real redis-server, as Upstash's
// own local-development server (serverless-redis-http, "SRH") is: the Upstash service cannot be
// reached from the tests, the protocol its client speaks can. It implements what
// @upstash/redis 1.39.0 (pinned in the root package.json) sends, read from its source
// (pkg/http.ts, pkg/pipeline.ts, pkg/auto-pipeline.ts):
//   - POST /          body: one command as a JSON array, answer {"result": …} or {"error": …}
//   - POST /pipeline  body: an array of commands (the client's auto-pipelining, on by default,
//                     sends every command except a few such as HGETALL this way), answer an
//                     array of {"result"} / {"error"}, one per command, in order; not atomic
//   - `Authorization: Bearer <token>`, else 401 {"error": "Unauthorized"}
//   - `Upstash-Encoding: base64` (the client's default): every string of a result, nested in
//     arrays too, is sent base64-encoded; numbers and null are not; errors are never encoded.
// A failing single command answers 400 with {"error"}, as Upstash does; arguments may be JSON
// strings, numbers or booleans (the client sends e.g. EVAL's key count as a number). Not
// implemented (the budget store does not use them): /multi-exec, path-style commands
// (GET /get/key), subscriptions. Each command goes to Redis over RESP2 on one connection, in
// order (Redis answers a connection's commands in the order sent).
//
// Usage: node tests/edge/upstash-rest.mjs redis://127.0.0.1:PORT
//   token from UPSTASH_REDIS_REST_TOKEN; listens on a free loopback port and prints its URL.
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Bounds: the client's auto-pipeline holds at most 1000 commands; ledgers are a few KB. */
const MAX_BODY = 4 * 1024 * 1024;
const MAX_COMMANDS = 1000;
const MAX_ARGS = 10_000;
/** Bounds on a Redis reply, so a bad peer cannot make the parser allocate without limit. */
const MAX_BULK = 64 * 1024 * 1024;
const MAX_ARRAY = 1_000_000;
const MAX_DEPTH = 32;

class RespError extends Error {}

/** Parses one RESP2 reply of `buf` at `at`: [value, next offset], or null when incomplete. */
function parseReply(buf, at, depth = 0) {
  if (depth > MAX_DEPTH) throw new Error('redis reply nested too deeply');
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new RespError(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len === -1) return [null, next];
      if (!Number.isSafeInteger(len) || len < 0 || len > MAX_BULK) throw new Error(`bad bulk length ${line}`);
      if (buf.length < next + len + 2) return null;
      return [buf.subarray(next, next + len), next + len + 2];
    }
    case '*': {
      const n = Number(line);
      if (n === -1) return [null, next];
      if (!Number.isSafeInteger(n) || n < 0 || n > MAX_ARRAY) throw new Error(`bad array length ${line}`);
      const items = [];
      let pos = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos, depth + 1);
        if (r === null) return null;
        items.push(r[0]);
        pos = r[1];
      }
      return [items, pos];
    }
    default:
      throw new Error(`unknown redis reply type ${JSON.stringify(type)}`);
  }
}

function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const bytes = Buffer.from(a, 'utf8');
    parts.push(`$${bytes.length}\r\n`, bytes, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
}

/** One RESP connection; replies are matched to commands in order. */
export function connectRedis(url) {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  const waiting = [];
  let buf = Buffer.alloc(0);
  let failure = null;
  const failAll = (e) => {
    failure ??= e;
    while (waiting.length) waiting.shift().reject(failure);
  };
  socket.on('data', (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    try {
      for (;;) {
        const r = parseReply(buf, 0);
        if (r === null) break;
        buf = buf.subarray(r[1]);
        const w = waiting.shift();
        if (w === undefined) throw new Error('redis sent a reply nobody asked for');
        w.resolve(r[0]);
      }
    } catch (e) {
      failAll(e);
      socket.destroy();
    }
  });
  socket.on('error', failAll);
  socket.on('close', () => failAll(new Error('redis connection closed')));
  const ready = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    ready,
    /** Sends a command (strings); resolves to its reply (a RespError for a Redis error). */
    command(args) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        socket.write(encodeCommand(args));
      });
    },
    close() {
      socket.destroy();
    },
  };
}

/** A reply as Upstash sends it: strings (bulk bytes) base64 when asked, arrays recursively. */
function toResult(reply, base64) {
  if (reply instanceof RespError) throw reply;
  if (reply === null || typeof reply === 'number') return reply;
  if (Array.isArray(reply)) return reply.map((r) => toResult(r, base64));
  const bytes = Buffer.isBuffer(reply) ? reply : Buffer.from(reply, 'utf8');
  return base64 ? bytes.toString('base64') : bytes.toString('utf8');
}

/** A command of a request body as Redis arguments, or an error message. */
function commandArgs(cmd) {
  if (!Array.isArray(cmd) || cmd.length === 0 || cmd.length > MAX_ARGS) return 'ERR a command is a non-empty JSON array';
  const args = [];
  for (const a of cmd) {
    if (typeof a === 'string') args.push(a);
    else if (typeof a === 'number' || typeof a === 'boolean') args.push(String(a));
    else return 'ERR command arguments must be strings, numbers or booleans';
  }
  return args;
}

async function execute(redis, cmd, base64) {
  const args = commandArgs(cmd);
  if (typeof args === 'string') return { error: args };
  try {
    return { result: toResult(await redis.command(args), base64) };
  } catch (e) {
    if (e instanceof RespError) return { error: e.message };
    throw e;
  }
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Starts the REST server on a free loopback port: {url, close}. */
export async function startUpstashRest({ redisUrl, token }) {
  if (!token) throw new Error('a token is required');
  const redis = connectRedis(redisUrl);
  await redis.ready;
  const server = createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    try {
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'Unauthorized' });
      const path = new URL(req.url, 'http://x').pathname;
      if (req.method !== 'POST' || (path !== '/' && path !== '/pipeline')) {
        return send(404, { error: `ERR ${req.method} ${path} is not implemented here` });
      }
      let body;
      try {
        body = JSON.parse(await readBody(req));
      } catch (e) {
        return send(400, { error: `ERR malformed request body: ${e.message}` });
      }
      const base64 = String(req.headers['upstash-encoding'] ?? '').toLowerCase() === 'base64';
      if (path === '/') {
        const out = await execute(redis, body, base64);
        return send(out.error === undefined ? 200 : 400, out);
      }
      if (!Array.isArray(body) || body.length === 0 || body.length > MAX_COMMANDS) {
        return send(400, { error: `ERR a pipeline is an array of 1 to ${MAX_COMMANDS} commands` });
      }
      // Written back to back without awaiting each: Redis keeps their order.
      return send(200, await Promise.all(body.map((cmd) => execute(redis, cmd, base64))));
    } catch (e) {
      return send(500, { error: `ERR ${e.message}` });
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () =>
      new Promise((resolve) => {
        redis.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const redisUrl = process.argv[2];
  const token = process.env.UPSTASH_REDIS_REST_TOKEN;
  if (!redisUrl || !token) {
    console.error('usage: UPSTASH_REDIS_REST_TOKEN=… node tests/edge/upstash-rest.mjs redis://127.0.0.1:PORT');
    process.exit(2);
  }
  const { url, close } = await startUpstashRest({ redisUrl, token });
  console.log(url);
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => close().then(() => process.exit(0)));
}
