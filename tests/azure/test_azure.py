"""Warden's Azure Functions custom handler under the host harness (functions_host.py), with real
storage (Azurite) and, for the transient-failure cases, a real Redis that is stopped mid-test.

Run by scripts/test-azure, which starts Azurite and passes:
  AZURE_STORAGE_CONNECTION_STRING  Azurite's devstoreaccount1 connection string
  WARDEN_AZURE_HANDLER             the handler binary (warden-azure)
  WARDEN_BIN                       the `warden` binary (for `warden serve` comparisons)
  WARDEN_AZURE_WORK                a scratch directory (logs, Redis)
Prints one line `azure: N passed, N failed`.
"""

import base64
import glob
import http.server
import threading
import json
import os
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

from functions_host import FunctionsHost, free_port, queue_client, upload

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
APP = os.path.join(REPO, "azure")
CONN = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
HANDLER = os.environ["WARDEN_AZURE_HANDLER"]
WARDEN = os.environ["WARDEN_BIN"]
WORK = os.environ["WARDEN_AZURE_WORK"]
CORPUS = os.path.join(REPO, "tests", "conformance")

# Fields that differ between two runs of the same request.
VOLATILE = {"ts", "request_id", "latency_ms"}


def shipped_settings():
    with open(os.path.join(APP, "local.settings.json.example")) as f:
        values = json.load(f)["Values"]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
    env.update(values)
    env.update({"POLICY_FILE": os.path.join(REPO, "policies", "policy.tool_access.yaml"), "WARDEN_AUDIT": "off"})
    return env


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


class Serve:
    """`warden serve` with the same environment, the reference answers come from."""

    def __init__(self, env, name):
        self.port = free_port()
        self.log = open(os.path.join(WORK, f"serve-{name}.log"), "ab")
        env = dict(env, WARDEN_DATA_DIR=os.path.join(WORK, f"data-{name}"))
        self.proc = subprocess.Popen(
            [WARDEN, "serve", "--addr", f"127.0.0.1:{self.port}"], env=env, stdout=self.log, stderr=self.log
        )
        for _ in range(300):
            try:
                self.request("GET", "/api/v1/health")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("warden serve did not start")

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


class Events:
    """A webhook receiver on loopback: the decision events the handler sends."""

    def __init__(self):
        received = self.received = []

        class Receive(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


EVENTS = Events()
RESULTS = {"passed": 0, "failed": 0}


def case(fn):
    def run(*args):
        name = fn.__name__
        try:
            fn(*args)
            RESULTS["passed"] += 1
            print(f"test azure::{name} ... ok", flush=True)
        except Exception:
            RESULTS["failed"] += 1
            print(f"test azure::{name} ... FAILED", flush=True)
            traceback.print_exc()

    run.__name__ = fn.__name__
    return run


def blob_text(container, name):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(CONN).get_blob_client(container, name).download_blob().readall()


def blob_exists(container, name):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(CONN).get_blob_client(container, name).exists()


def queue_messages(name):
    """Every message now in queue `name`, base64-decoded, removed from the queue."""
    qc = queue_client(CONN, name)
    try:
        qc.create_queue()
    except Exception:
        pass
    out = []
    for m in qc.receive_messages(max_messages=32, visibility_timeout=30):
        out.append(base64.b64decode(m.content))
        qc.delete_message(m)
    return out


def peek_count(name):
    qc = queue_client(CONN, name)
    try:
        return len(qc.peek_messages(max_messages=32))
    except Exception:
        return 0


# -- blob ---------------------------------------------------------------------------------------
@case
def blob_batch_gets_results_with_the_same_decisions_as_serve(host, serve):
    items = [
        {"id": "r1", "payload": {"message": "write to jane.doe@example.com"}, "agent_id": "agent-1"},
        {"id": "r2", "payload": {"note": "nothing sensitive here"}},
        {"id": "r3", "payload": {"ssn": "my SSN is 123-45-6789"}, "agent_id": "agent-3"},
    ]
    upload(CONN, "ai-requests", "batch-1.json", json.dumps(items).encode(), "application/json")
    assert host.run_until(lambda: blob_exists("ai-results", "batch-1.json")), "no results blob"
    got = json.loads(blob_text("ai-results", "batch-1.json"))
    assert got["kind"] == "batch" and got["processed"] == 3, got
    assert [r["id"] for r in got["results"]] == ["r1", "r2", "r3"], got
    for item, result in zip(items, got["results"]):
        envelope = {k: v for k, v in item.items() if k != "id"}
        envelope.setdefault("agent_id", "blob-batch")
        status, body = serve.request("POST", "/", json.dumps(envelope).encode())
        want = json.loads(body)
        assert status == 200, body
        for field in ("decision", "violations", "modified_payload", "reasons", "policy_id"):
            assert result[field] == want[field], (field, result, want)
    assert sum(got["summary"].values()) == 3, got["summary"]
    assert not blob_exists("ai-quarantine", "batch-1.json")


@case
def blob_json_lines_and_single_envelope_are_batches(host, serve):
    lines = b'{"id":"a","payload":{"t":"hello"}}\n{"id":"b","action":"redact","text":"mail bob@example.org"}\n'
    upload(CONN, "ai-requests", "lines.jsonl", lines)
    upload(CONN, "ai-requests", "one.json", b'{"action":"precheck","tool":"web.search","raw_text":"call 555-123-4567"}')
    assert host.run_until(lambda: blob_exists("ai-results", "lines.jsonl") and blob_exists("ai-results", "one.json"))
    lines_got = json.loads(blob_text("ai-results", "lines.jsonl"))
    assert [r["id"] for r in lines_got["results"]] == ["a", "b"], lines_got
    assert "bob@example.org" not in json.dumps(lines_got), "redacted text leaked the email"
    one = json.loads(blob_text("ai-results", "one.json"))
    status, body = serve.request("POST", "/", b'{"action":"precheck","tool":"web.search","raw_text":"call 555-123-4567"}')
    want = json.loads(body)
    assert one["results"][0]["decision"] == want["decision"], (one, want)
    assert one["results"][0]["raw_text_out"] == want["raw_text_out"], (one, want)


@case
def blob_documents_go_to_approved_processed_or_quarantine(host, serve):
    docs = {
        "clean.txt": (b"The quarterly report is attached.", None),
        "contact.txt": (b"Reach me at jane.doe@example.com tomorrow.", "text/plain"),
        "record.json": (json.dumps({"customer": {"email": "a.b@example.com", "ssn": "123-45-6789"}}).encode(), None),
        "image.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", "image/png"),
    }
    for name, (data, ctype) in docs.items():
        upload(CONN, "ai-requests", name, data, ctype)
    assert host.run_until(lambda: all(blob_exists("ai-results", n) for n in docs)), "missing records"
    for name, (data, _) in docs.items():
        record = json.loads(blob_text("ai-results", name))
        container, _, blob = record["destination"].partition("/")
        assert blob == name, record
        stored = blob_text(container, name)
        if record["disposition"] == "modify":
            assert container == "ai-processed" and stored != data, record
            assert b"jane.doe@example.com" not in stored and b"a.b@example.com" not in stored, stored
        else:
            # Exact bytes: the handler's base64 went through the host's try-base64 decode.
            assert stored == data, (name, stored)
        assert record["decision"] in ("allow", "deny", "transform", "confirm"), record
        assert isinstance(record["reasons"], list) and record["policy_id"], record
    assert json.loads(blob_text("ai-results", "clean.txt"))["disposition"] == "approve"
    assert json.loads(blob_text("ai-results", "contact.txt"))["disposition"] == "modify"


@case
def blob_over_the_document_limit_is_quarantined(host, serve):
    limit = int(host.env["WARDEN_DOCUMENT_LIMIT"])
    data = (b"x" * 63 + b"\n") * (limit // 64 + 2)
    upload(CONN, "ai-requests", "big.txt", data)
    assert host.run_until(lambda: blob_exists("ai-results", "big.txt"))
    record = json.loads(blob_text("ai-results", "big.txt"))
    assert record["disposition"] == "quarantine" and record["reasons"] == ["error:payload_too_large"], record
    assert blob_text("ai-quarantine", "big.txt") == data


@case
def malformed_blobs_get_error_results_and_are_not_poisoned(host, serve):
    upload(CONN, "ai-requests", "broken.json", b'{"payload": ', "application/json")
    too_many = json.dumps([{"payload": {"n": i}} for i in range(int(host.env["WARDEN_MAX_BATCH"]) + 1)])
    upload(CONN, "ai-requests", "too-many.json", too_many.encode())
    upload(CONN, "ai-requests", "bad-item.json", b'[{"id":"x","action":"nope"},{"id":"y","payload":{"a":"b"}}]')
    names = ("broken.json", "too-many.json", "bad-item.json")
    assert host.run_until(lambda: all(blob_exists("ai-results", n) for n in names))
    broken = json.loads(blob_text("ai-results", "broken.json"))
    assert broken["disposition"] == "quarantine" and broken["reasons"] == ["error:invalid_json"], broken
    many = json.loads(blob_text("ai-results", "too-many.json"))
    assert many["error"]["code"] == "invalid_request" and "at most" in many["error"]["message"], many
    bad = json.loads(blob_text("ai-results", "bad-item.json"))
    assert bad["results"][0]["ok"] is False and bad["results"][0]["error"]["field"] == "action", bad
    assert bad["results"][1]["ok"] is True and bad["summary"]["error"] == 1, bad
    assert peek_count("webjobs-blobtrigger-poison") == 0


# -- queue --------------------------------------------------------------------------------------
@case
def queue_message_gets_a_result_message(host, serve):
    queue_messages("governance-results")
    envelope = {"action": "precheck", "tool": "web.fetch", "raw_text": "email jane.doe@example.com"}
    bare = {"email": "x@example.com", "note": "bare payload"}
    qc = queue_client(CONN, "governance-queue")
    before = len(EVENTS.received)
    qc.send_message(json.dumps(envelope))
    qc.send_message(json.dumps(bare))
    got = []
    assert host.run_until(lambda: got.extend(queue_messages("governance-results")) or len(got) >= 2)
    results = [json.loads(m) for m in got]
    by_kind = {("raw_text_out" in r): r for r in results}
    # Each decision event left before its invocation answered (the outbox is flushed first).
    events = [e for _, e in EVENTS.received[before:]]
    assert len(events) >= 2 and all(e["schema"] == "decision.v1" for e in events), events
    assert all(h.get("x-warden-signature", "").startswith("sha256=") for h, _ in EVENTS.received), "unsigned event"
    assert "jane.doe@example.com" not in json.dumps(events), "raw PII in an event"
    status, body = serve.request("POST", "/", json.dumps(envelope).encode())
    want = json.loads(body)
    assert strip(by_kind[True]) == strip(want), (by_kind[True], want)
    evaluated = by_kind[False]
    status, body = serve.request("POST", "/api/v1/evaluate", json.dumps({"payload": bare, "agent_id": "queue-default"}).encode())
    want = json.loads(body)
    assert evaluated["decision"] == want["decision"] and evaluated["modified_payload"] == want["modified_payload"]
    assert all(r["request_id"] for r in results), results
    assert peek_count("governance-queue-poison") == 0


@case
def malformed_messages_get_error_results_and_are_not_poisoned(host, serve):
    queue_messages("governance-results")
    qc = queue_client(CONN, "governance-queue")
    for text in ("this is not json", '{"action":"launch"}', "[1,2]"):
        qc.send_message(text)
    got = []
    assert host.run_until(lambda: got.extend(queue_messages("governance-results")) or len(got) >= 3)
    codes = sorted(json.loads(m)["error"]["code"] for m in got)
    assert codes == ["invalid_json", "invalid_request", "invalid_request"], codes
    time.sleep(host.visibility + 0.5)
    host.poll_queues()
    assert peek_count("governance-queue-poison") == 0
    assert peek_count("governance-queue") == 0


@case
def a_redelivered_message_is_answered_once(host, serve):
    queue_messages("governance-results")
    qc = queue_client(CONN, "governance-queue")
    qc.send_message(json.dumps({"action": "redact", "text": "call 555-123-4567"}))
    msg = next(iter(qc.receive_messages(max_messages=1, visibility_timeout=1)))
    text = base64.b64decode(msg.content).decode()
    # The host crashed after the handler answered but before the delete: same Id again.
    meta = {"Id": json.dumps(msg.id), "DequeueCount": "1"}
    ok1, first = host._invoke("governance-queue", {"msg": json.dumps(text)}, meta)
    meta["DequeueCount"] = "2"
    ok2, second = host._invoke("governance-queue", {"msg": json.dumps(text)}, meta)
    assert ok1 and ok2, (first, second)
    assert "result" in first["Outputs"] and first["Outputs"]["result"]["redacted"], first
    assert second["Outputs"] == {}, second
    qc.delete_message(msg)


# -- HTTP ---------------------------------------------------------------------------------------
def conformance_cases():
    for path in sorted(glob.glob(os.path.join(CORPUS, "*.json"))):
        with open(path) as f:
            for c in json.load(f):
                yield os.path.basename(path), c


def expect_matches(case_, got):
    e = case_["expect"]
    for field in ("decision", "raw_text_out", "reasons", "policy_id"):
        if got.get(field) != e[field]:
            return f"{case_['name']}: {field} want {e[field]!r}, got {got.get(field)!r}"
    return None


@case
def conformance_corpus_through_the_http_function_in_both_modes(*_):
    groups = {}
    for file, c in conformance_cases():
        groups.setdefault(json.dumps(c.get("env", {}), sort_keys=True), []).append((file, c))
    failures, checked = [], 0
    for i, (env_key, cases) in enumerate(groups.items()):
        env = dict(shipped_settings())
        env.update(json.loads(env_key))
        # The corpus runs with the spec's request-policy behaviour (SPEC §3).
        env["WARDEN_REQUEST_POLICY"] = "replace"
        # Both modes hit one handler: twice the corpus within a minute.
        env["RATE_LIMIT_PER_MINUTE"] = "100000"
        if "POLICY_FILE" in env and not os.path.isabs(env["POLICY_FILE"]):
            env["POLICY_FILE"] = os.path.join(CORPUS, env["POLICY_FILE"])
        serve = Serve(env, f"conf-{i}")
        forwarding = FunctionsHost(APP, HANDLER, env, CONN, forwarding=True).start(os.path.join(WORK, f"conf-{i}.log"))
        payload = FunctionsHost(APP, HANDLER, env, CONN, forwarding=False)
        payload.port = forwarding.port
        try:
            for file, c in cases:
                path = f"/api/v1/{c['endpoint']}"
                body = json.dumps(c["request"]).encode()
                s_status, s_body = serve.request("POST", path, body)
                want = json.loads(s_body)
                for mode, host in (("forwarding", forwarding), ("payload", payload)):
                    status, _, got = host.http("POST", path, {"Content-Type": "application/json"}, body)
                    got = json.loads(got)
                    checked += 1
                    if status != s_status or strip(got) != strip(want):
                        failures.append(f"[{file}] {mode} {c['name']}: {status} {got} != serve {s_status} {want}")
                    elif (problem := expect_matches(c, got)) is not None:
                        failures.append(f"[{file}] {mode} {problem}")
        finally:
            forwarding.stop()
            serve.stop()
    assert checked >= 2 * 59, checked
    assert not failures, "\n".join(failures[:20])


@case
def every_route_answers_as_serve_does_in_both_modes(*_):
    env = shipped_settings()
    env["WARDEN_REQUEST_POLICY"] = "replace"
    serve = Serve(env, "routes")
    forwarding = FunctionsHost(APP, HANDLER, env, CONN, forwarding=True).start(os.path.join(WORK, "routes.log"))
    payload = FunctionsHost(APP, HANDLER, env, CONN, forwarding=False)
    payload.port = forwarding.port
    envelope = json.dumps({"action": "evaluate", "payload": {"m": "mail jane@example.com"}, "agent_id": "a"}).encode()
    requests = [
        ("GET", "/api/v1/health", None, "/api/v1/health"),
        ("GET", "/api/openapi.json", None, "/api/openapi.json"),
        ("POST", "/api/v1/redact", b'{"text":"mail jane@example.com or 555-123-4567"}', "/api/v1/redact"),
        ("POST", "/api/v1/evaluate", b'{"payload":{"a":["x@example.com"]},"agent_id":"z"}', "/api/v1/evaluate"),
        ("POST", "/api/v1/batch", b'{"requests":[{"action":"precheck","tool":"t","raw_text":"x@example.com"},{"action":"bad"}]}', "/api/v1/batch"),
        ("POST", "/api/v1/precheck", b"{not json", "/api/v1/precheck"),
        ("POST", "/api/v1/postcheck", b'{"tool": 5}', "/api/v1/postcheck"),
        ("POST", "/api/governance", envelope, "/"),
        ("GET", "/api/v1/precheck", None, "/api/v1/precheck"),
        ("GET", "/api/nothing-here", None, "/api/nothing-here"),
    ]
    failures = []
    try:
        for method, path, body, serve_path in requests:
            s_status, s_body = serve.request(method, serve_path, body)
            for mode, host in (("forwarding", forwarding), ("payload", payload)):
                status, _, got = host.http(method, path, {"Content-Type": "application/json"} if body else {}, body)
                if status != s_status or strip(json.loads(got)) != strip(json.loads(s_body)):
                    failures.append(f"{mode} {method} {path}: {status} {got[:300]!r} != serve {s_status} {s_body[:300]!r}")
        status, _, ready = forwarding.http("GET", "/api/v1/ready")
        assert status in (200, 503) and "checks" in json.loads(ready), ready
    finally:
        forwarding.stop()
        serve.stop()
    assert not failures, "\n".join(failures)


# -- transient failures -------------------------------------------------------------------------
def start_redis():
    out = subprocess.run([os.path.join(REPO, "scripts", "start-redis")], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@case
def a_store_outage_is_retried_then_poisoned(*_):
    url = start_redis()
    port = url.rsplit(":", 1)[1]
    env = shipped_settings()
    # Rate limiting off: it fails open, and each call to the stopped Redis costs seconds.
    env.update({"REDIS_URL": url, "WARDEN_STORE": "redis", "RATE_LIMIT_PER_MINUTE": "0"})
    host = FunctionsHost(APP, HANDLER, env, CONN).start(os.path.join(WORK, "outage.log"))
    try:
        queue_messages("governance-results")
        queue_messages("governance-queue-poison")
        qc = queue_client(CONN, "governance-queue")
        qc.send_message(json.dumps({"action": "precheck", "tool": "t", "raw_text": "before the outage"}))
        got = []
        assert host.run_until(lambda: got.extend(queue_messages("governance-results")) or got), "no result"
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True)
        qc.send_message(json.dumps({"action": "precheck", "tool": "t", "raw_text": "during the outage"}))
        poisoned = []
        attempts = []
        t0 = time.time()

        def poisoned_yet():
            attempts.append(1)
            poisoned.extend(queue_messages("governance-queue-poison"))
            return poisoned

        assert host.run_until(poisoned_yet, timeout=60, interval=0.5), "never poisoned"
        assert len(poisoned) == 1 and b"during the outage" in poisoned[0], poisoned
        assert queue_messages("governance-results") == [], "a failed attempt published a result"
        assert host.failed_invocations == host.max_dequeue, host.failed_invocations
        # A batch blob whose item needs the budget store: the blob's invocation fails likewise
        # and, after its retries, is recorded in webjobs-blobtrigger-poison with no results.
        queue_messages("webjobs-blobtrigger-poison")
        item = {"id": "b1", "action": "precheck", "tool": "t", "raw_text": "hello", "user_id": "u-outage"}
        upload(CONN, "ai-requests", "outage.json", json.dumps([item]).encode())
        blob_poison = []
        poisoned_blob = host.run_until(
            lambda: blob_poison.extend(queue_messages("webjobs-blobtrigger-poison")) or blob_poison, timeout=60
        )
        results = blob_text("ai-results", "outage.json") if blob_exists("ai-results", "outage.json") else None
        assert poisoned_blob, (host.failed_invocations, results)
        record = json.loads(blob_poison[0])
        assert (record["ContainerName"], record["BlobName"]) == ("ai-requests", "outage.json"), record
        assert not blob_exists("ai-results", "outage.json")
        assert host.failed_invocations == 2 * host.max_dequeue, host.failed_invocations
        # maxDequeueCount attempts, each visibilityTimeout apart.
        assert time.time() - t0 >= (host.max_dequeue - 1) * host.visibility, time.time() - t0
    finally:
        host.stop()
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True)


def main():
    env = shipped_settings()
    env.update({"WARDEN_DOCUMENT_LIMIT": "4096", "WARDEN_MAX_BATCH": "20"})
    serve = Serve(env, "main")
    handler_env = dict(env, WEBHOOK_URL=EVENTS.url, WEBHOOK_SECRET="harness-secret")
    handler_env["PRECHECK_DLQ"] = os.path.join(WORK, "dlq.jsonl")
    host = FunctionsHost(APP, HANDLER, handler_env, CONN).start(os.path.join(WORK, "handler.log"))
    try:
        for test in (
            blob_batch_gets_results_with_the_same_decisions_as_serve,
            blob_json_lines_and_single_envelope_are_batches,
            blob_documents_go_to_approved_processed_or_quarantine,
            blob_over_the_document_limit_is_quarantined,
            malformed_blobs_get_error_results_and_are_not_poisoned,
            queue_message_gets_a_result_message,
            malformed_messages_get_error_results_and_are_not_poisoned,
            a_redelivered_message_is_answered_once,
        ):
            test(host, serve)
    finally:
        host.stop()
        serve.stop()
    conformance_corpus_through_the_http_function_in_both_modes()
    every_route_answers_as_serve_does_in_both_modes()
    a_store_outage_is_retried_then_poisoned()
    EVENTS.stop()
    print(f"azure: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
