// Streaming postcheck as web streams: `warden.governStream(readable, options)` and
// `warden.governTransform(options)`. The formats are governed in Rust (the core's
// FormatStream, as `POST /api/v1/postcheck/stream`); this file only moves bytes (Uint8Array
// both ways) and ends the stream on a deny.
import { Warden } from './warden_wasm.js';

const encoder = new TextEncoder();

function bytes(chunk) {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return encoder.encode(chunk);
  if (ArrayBuffer.isView(chunk)) return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new TypeError(`warden.governStream: chunks must be Uint8Array, ArrayBuffer or string, not ${typeof chunk}`);
}

/** A WardenError for a `format: "text"` stream that stopped: the record says why. */
function stoppedError(record) {
  const code = record?.error?.code ?? 'denied';
  const detail = record?.error?.message ?? (record?.reasons ?? []).join(', ');
  const e = new Error(`Warden.governStream: the stream was stopped (${record?.decision}): ${detail}`);
  e.name = 'WardenError';
  e.code = code;
  e.status = code === 'denied' ? 403 : 422;
  e.record = record;
  return e;
}

/**
 * A TransformStream governing what is written to it. `transform.result` resolves to the
 * metadata record when the stream ends (deny included) and rejects when it is aborted. A
 * stopped stream closes its readable after the record (text: after the released text; the
 * deny is in `result`, and `governStream` turns it into an error).
 */
function governTransform(options) {
  const { tool, scope, format = 'text', field } = options ?? {};
  if (typeof tool !== 'string') throw new TypeError('warden.governStream: options.tool must be a string');
  const stream = this.openStream(tool, scope ?? undefined, format, field ?? undefined);
  let settle;
  let fail;
  const result = new Promise((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  // Unobserved rejections (a consumer that never reads `result`) are not process errors.
  result.catch(() => {});
  let ended = false;
  let transform;
  const end = (controller) => {
    const out = stream.finish();
    const record = stream.result();
    ended = true;
    stream.free();
    if (out.length) controller.enqueue(out);
    settle(record);
    // Text has no room for the record: a stop is reported by governStream as an error after
    // the released text (erroring here would drop released chunks still queued).
    if (format === 'text' && record.decision === 'deny') transform.stopError = stoppedError(record);
  };
  transform = new TransformStream(
    {
      transform(chunk, controller) {
        if (ended) return;
        const out = stream.push(bytes(chunk));
        if (out.length) controller.enqueue(out);
        if (stream.stopped) {
          // A deny (or bad input): the record is the last thing sent; stop reading upstream.
          end(controller);
          controller.terminate();
        }
      },
      flush(controller) {
        if (!ended) end(controller);
      },
      cancel(reason) {
        if (!ended) {
          ended = true;
          stream.free();
        }
        fail(reason ?? new Error('warden.governStream: cancelled'));
      },
    },
    // One chunk in flight each side: governed text flows out as soon as it is released.
    { highWaterMark: 1 },
    { highWaterMark: 1 },
  );
  transform.result = result;
  transform.abort = (reason) => {
    if (!ended) {
      ended = true;
      stream.free();
    }
    fail(reason);
  };
  return transform;
}

/**
 * `readable` governed: a ReadableStream of the governed bytes (the same bytes as the HTTP
 * route's body for ndjson, openai and anthropic; the governed text itself for text), with
 * `.result` resolving to the metadata record.
 */
function governStream(readable, options) {
  if (!readable || typeof readable.pipeTo !== 'function') {
    throw new TypeError('warden.governStream: the first argument must be a ReadableStream (e.g. response.body)');
  }
  const transform = governTransform.call(this, options);
  readable.pipeTo(transform.writable).catch((e) => transform.abort(e));
  let out = transform.readable;
  if ((options?.format ?? 'text') === 'text') {
    // Errors after the last released chunk has been read: pulled one chunk at a time
    // (highWaterMark 0), so nothing released is queued when the error comes.
    const reader = out.getReader();
    out = new ReadableStream(
      {
        async pull(controller) {
          const { value, done } = await reader.read();
          if (!done) controller.enqueue(value);
          else if (transform.stopError) controller.error(transform.stopError);
          else controller.close();
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      },
      { highWaterMark: 0 },
    );
  }
  out.result = transform.result;
  return out;
}

Warden.prototype.governTransform = governTransform;
Warden.prototype.governStream = governStream;
