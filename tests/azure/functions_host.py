"""A stand-in for the Azure Functions host, for testing Warden's custom handler without Core Tools.

Core Tools cannot be installed here (its installer downloads the host from a vendor CDN), so this
module plays the host's part against real storage (Azurite) and the real handler binary. It
follows, and is limited to, what the documentation and the host's source say:

- learn.microsoft.com/azure/azure-functions/functions-custom-handlers: the app layout (host.json
  `customHandler.description.defaultExecutablePath`, one folder per function with function.json),
  `FUNCTIONS_CUSTOMHANDLER_PORT`, the request payload `{"Data", "Metadata"}` POSTed to
  `/{functionName}`, the response payload `{"Outputs", "Logs", "ReturnValue"}`, HTTP-only functions
  forwarded as they are when `enableForwardingHttpRequest` is true, `extensions.http.routePrefix`.
- azure-functions-host (read only), src/WebJobs.Script/Workers/Http/DefaultHttpWorkerService.cs:
  readiness = any HTTP answer on the port (`IsWorkerReady`), forwarding keeps the request path
  (`GetPathValue`) and returns the handler's response unchanged; payload mode calls
  `EnsureSuccessStatusCode` — a non-2xx answer fails the invocation; headers
  `X-Azure-Functions-HostVersion` and `X-Azure-Functions-InvocationId`.
- .../Workers/MessageExtensions/ScriptInvocationContextExtensions.cs: bytes → base64 strings
  (binary or not), other values → `JObject.FromObject` or else `JsonConvert.SerializeObject`
  (strings arrive JSON-encoded, numbers as text); metadata keys ending in "Trigger" are left out.
- .../Extensions/HttpRequestExtensions.cs `GetRequestAsJObject`: `Url, Method, Query, Headers
  ({name: [values]}), Params, Identities, Body` (a string; base64 bytes for octet-stream/multipart).
- .../Workers/Http/HttpScriptInvocationResultExtensions.cs: outputs of type `http` are read as
  `{StatusCode, Status, Body, Headers}`; other outputs not declared `dataType: binary` go through
  `Convert.FromBase64String` and, when that succeeds, are written as the decoded bytes.
- learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger: messages
  are base64 on the wire by default (`messageEncoding`); a failed invocation makes the message
  visible again after `visibilityTimeout`; after `maxDequeueCount` (5) failed attempts it moves to
  `<queue>-poison`. functions-bindings-storage-blob-trigger: a blob is processed once per ETag
  (blob receipts); after 5 failed attempts a message goes to `webjobs-blobtrigger-poison`.

Not emulated: function keys (authLevel), scale-out, the blob scan's log-based discovery (a
listing poll stands in for it), Application Insights.
"""

import base64
import binascii
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.queue import QueueServiceClient, TextBase64EncodePolicy

HOST_VERSION = "4.1036.1.0-harness"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serialize_value(value):
    """GetHttpScriptInvocationContextValue: bytes → base64, objects stay, the rest SerializeObject."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return value
    return json.dumps(value)


def try_base64(value):
    """Convert.FromBase64String: whitespace ignored, length a multiple of 4, padding required."""
    if not isinstance(value, str):
        return None
    compact = re.sub(r"\s", "", value)
    if len(compact) % 4 != 0 or not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def output_bytes(binding, value):
    """HttpScriptInvocationResultExtensions.GetBindingValue, then what a storage binding writes."""
    if binding.get("dataType") != "binary":
        decoded = try_base64(value)
        if decoded is not None:
            return decoded
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


class FunctionsHost:
    def __init__(self, app_dir, handler, env, connection_string, forwarding=None):
        with open(os.path.join(app_dir, "host.json")) as f:
            self.host_json = json.load(f)
        self.functions = {}
        for name in sorted(os.listdir(app_dir)):
            path = os.path.join(app_dir, name, "function.json")
            if os.path.isfile(path):
                with open(path) as f:
                    self.functions[name] = json.load(f)["bindings"]
        custom = self.host_json["customHandler"]
        self.forwarding = custom.get("enableForwardingHttpRequest", False) if forwarding is None else forwarding
        self.route_prefix = self.host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api")
        queues = self.host_json.get("extensions", {}).get("queues", {})
        self.max_dequeue = int(queues.get("maxDequeueCount", 5))
        h, m, s = (queues.get("visibilityTimeout") or "00:00:00").split(":")
        self.visibility = int(h) * 3600 + int(m) * 60 + int(float(s))
        self.base64_messages = queues.get("messageEncoding", "base64") == "base64"
        self.handler, self.env, self.conn = handler, env, connection_string
        self.blobs = BlobServiceClient.from_connection_string(connection_string)
        self.queues = QueueServiceClient.from_connection_string(connection_string)
        self.receipts = {}  # (container, blob) → ETag processed or poisoned
        self.failures = {}  # (container, blob, etag) → failed attempts
        self.proc = None
        self.port = None
        self.logs = []
        self.failed_invocations = 0

    # -- process -------------------------------------------------------------------------------
    def start(self, log_path, timeout=30.0):
        self.port = free_port()
        env = dict(self.env, FUNCTIONS_CUSTOMHANDLER_PORT=str(self.port), AzureWebJobsStorage=self.conn)
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([self.handler], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"handler exited with {self.proc.returncode}; see {log_path}")
            try:
                # IsWorkerReady: any HTTP answer at all means the worker is up.
                self._send("GET", "/", {}, None)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"handler did not listen within {timeout}s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.proc:
            self.log.close()

    def _send(self, method, path, headers, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method)
        for k, v in headers.items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _invoke(self, function, data, metadata):
        payload = json.dumps({"Data": data, "Metadata": metadata}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Azure-Functions-HostVersion": HOST_VERSION,
            "X-Azure-Functions-InvocationId": str(uuid.uuid4()),
            "User-Agent": f"Azure-Functions-Host/{HOST_VERSION}",
        }
        try:
            status, _, body = self._send("POST", f"/{function}", headers, payload)
        except OSError as e:
            return False, {"error": str(e)}
        if not 200 <= status < 300:  # EnsureSuccessStatusCode
            self.failed_invocations += 1
            return False, {"status": status, "body": body.decode(errors="replace")}
        result = json.loads(body)
        self.logs.extend(result.get("Logs") or [])
        return True, result

    def _bindings(self, function, direction):
        return [b for b in self.functions[function] if b.get("direction") == direction]

    # -- HTTP ----------------------------------------------------------------------------------
    def _route(self, path):
        for name, bindings in self.functions.items():
            trigger = next((b for b in bindings if b["type"] == "httpTrigger"), None)
            if trigger is None:
                continue
            template = "/".join(p for p in [self.route_prefix, trigger.get("route", name)] if p)
            pattern = re.sub(r"\{\*(\w+)\}", r"(?P<\1>.*)", template)
            pattern = re.sub(r"\{(\w+)\??\}", r"(?P<\1>[^/]+)", pattern)
            m = re.fullmatch(pattern, path.lstrip("/"))
            if m:
                return name, trigger, {k: v or "" for k, v in m.groupdict().items()}
        return None, None, None

    def http(self, method, path_and_query, headers=None, body=None):
        """A client request to the function app; returns (status, headers, body bytes)."""
        headers = dict(headers or {})
        path, _, query = path_and_query.partition("?")
        function, trigger, params = self._route(path)
        methods = [m.upper() for m in (trigger or {}).get("methods", [])]
        if function is None or (methods and method.upper() not in methods):
            return 404, {}, b""
        outputs = self._bindings(function, "out")
        http_only = len(self.functions[function]) == 2 and outputs and outputs[0]["type"] == "http"
        if self.forwarding and http_only:
            headers.update({
                "X-Azure-Functions-HostVersion": HOST_VERSION,
                "X-Azure-Functions-InvocationId": str(uuid.uuid4()),
            })
            return self._send(method, path_and_query, headers, body)
        req = {
            "Url": f"http://localhost:7071{path_and_query}",
            "Method": method.upper(),
            "Query": dict(urllib.parse.parse_qsl(query)),
            "Headers": {k: [v] for k, v in headers.items()},
            "Params": params,
            "Identities": [],
        }
        if body:
            ctype = headers.get("Content-Type", "").lower()
            octet = ctype.startswith("application/octet-stream") or ctype.startswith("multipart/")
            req["Body"] = base64.b64encode(body).decode() if octet else body.decode()
        metadata = {k: serialize_value(v) for k, v in params.items()}
        metadata["Query"] = req["Query"]
        ok, result = self._invoke(function, {trigger["name"]: req}, metadata)
        if not ok:
            return 500, {}, b""
        res = result["Outputs"][outputs[0]["name"]]
        for field in ("statusCode", "status", "body", "headers"):
            assert field in res, f"HTTP output without {field}: {res}"
        body = res["body"] if isinstance(res["body"], str) else json.dumps(res["body"])
        return int(res["statusCode"]), res["headers"], body.encode()

    # -- storage triggers ------------------------------------------------------------------------
    def _apply_outputs(self, function, outputs, names):
        for b in self._bindings(function, "out"):
            if b["name"] not in (outputs or {}):
                continue
            data = output_bytes(b, outputs[b["name"]])
            if b["type"] == "blob":
                container, _, blob = b["path"].format(**names).partition("/")
                cc = self.blobs.get_container_client(container)
                if not cc.exists():
                    cc.create_container()
                cc.upload_blob(blob, data, overwrite=True)
            elif b["type"] == "queue":
                qc = self.queues.get_queue_client(b["queueName"])
                self._ensure_queue(qc)
                text = data.decode()
                qc.send_message(base64.b64encode(data).decode() if self.base64_messages else text)

    @staticmethod
    def _ensure_queue(qc):
        try:
            qc.create_queue()
        except Exception:  # ResourceExistsError
            pass

    def poll_blobs(self):
        """One scan of every blob-triggered container; returns the number of invocations."""
        n = 0
        for function, bindings in self.functions.items():
            trigger = next((b for b in bindings if b["type"] == "blobTrigger"), None)
            if trigger is None:
                continue
            container, _, pattern = trigger["path"].partition("/")
            cc = self.blobs.get_container_client(container)
            if not cc.exists():
                continue
            for props in cc.list_blobs(include=["metadata"]):
                etag = props.etag
                if self.receipts.get((container, props.name)) == etag:
                    continue
                names = {"name": props.name}
                content = cc.download_blob(props.name).readall()
                metadata = {
                    "name": serialize_value(props.name),
                    "Uri": serialize_value(f"{cc.url}/{props.name}"),
                    "Properties": {
                        "ContentType": props.content_settings.content_type,
                        "Length": props.size,
                        "ETag": etag,
                        "BlobType": "BlockBlob",
                    },
                    "Metadata": dict(props.metadata or {}),
                }
                ok, result = self._invoke(function, {trigger["name"]: serialize_value(content)}, metadata)
                n += 1
                if ok:
                    self._apply_outputs(function, result.get("Outputs"), names)
                    self.receipts[(container, props.name)] = etag
                    continue
                key = (container, props.name, etag)
                self.failures[key] = self.failures.get(key, 0) + 1
                if self.failures[key] >= self.max_dequeue:
                    poison = self.queues.get_queue_client("webjobs-blobtrigger-poison")
                    self._ensure_queue(poison)
                    record = {
                        "Type": "BlobTrigger",
                        "FunctionId": f"Host.Functions.{function}",
                        "BlobType": "BlockBlob",
                        "ContainerName": container,
                        "BlobName": props.name,
                        "ETag": etag,
                    }
                    poison.send_message(base64.b64encode(json.dumps(record).encode()).decode())
                    self.receipts[(container, props.name)] = etag
        return n

    def poll_queues(self):
        """One receive on every queue-triggered queue; returns the number of invocations."""
        n = 0
        for function, bindings in self.functions.items():
            trigger = next((b for b in bindings if b["type"] == "queueTrigger"), None)
            if trigger is None:
                continue
            qc = self.queues.get_queue_client(trigger["queueName"])
            self._ensure_queue(qc)
            batch = int(self.host_json.get("extensions", {}).get("queues", {}).get("batchSize", 16))
            for msg in qc.receive_messages(messages_per_page=batch, max_messages=batch, visibility_timeout=60):
                n += 1
                ok = False
                text = msg.content
                if self.base64_messages:
                    raw = try_base64(text)
                    text = raw.decode("utf-8", errors="replace") if raw is not None else None
                if text is not None:
                    metadata = {
                        "Id": serialize_value(msg.id),
                        "DequeueCount": serialize_value(msg.dequeue_count),
                        "InsertionTime": serialize_value(str(msg.inserted_on)),
                        "ExpirationTime": serialize_value(str(msg.expires_on)),
                        "NextVisibleTime": serialize_value(str(msg.next_visible_on)),
                        "PopReceipt": serialize_value(msg.pop_receipt),
                    }
                    ok, result = self._invoke(function, {trigger["name"]: serialize_value(text)}, metadata)
                    if ok:
                        self._apply_outputs(function, result.get("Outputs"), {})
                        qc.delete_message(msg)
                        continue
                if text is None or msg.dequeue_count >= self.max_dequeue:
                    poison = self.queues.get_queue_client(trigger["queueName"] + "-poison")
                    self._ensure_queue(poison)
                    poison.send_message(msg.content)
                    qc.delete_message(msg)
                else:
                    qc.update_message(msg, visibility_timeout=self.visibility)
        return n

    def run_until(self, done, timeout=30.0, interval=0.2):
        """Runs the triggers until `done()` is true; returns whether it became true."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll_blobs()
            self.poll_queues()
            if done():
                return True
            time.sleep(interval)
        return False


def queue_client(connection_string, name):
    """A client for queue `name` (created if missing) that base64-encodes as the host expects."""
    qc = QueueServiceClient.from_connection_string(connection_string).get_queue_client(
        name, message_encode_policy=TextBase64EncodePolicy()
    )
    FunctionsHost._ensure_queue(qc)
    return qc


def upload(connection_string, container, name, data, content_type=None):
    cc = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    if not cc.exists():
        cc.create_container()
    settings = ContentSettings(content_type=content_type) if content_type else None
    cc.upload_blob(name, data, overwrite=True, content_settings=settings)
