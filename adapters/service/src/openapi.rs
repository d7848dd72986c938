//! The OpenAPI 3.1 document of every route (`GET /api/openapi.json`).

use serde_json::{json, Value};

/// [`document`] as compact JSON text, generated (`src/openapi.json`): builds without the
/// `native` feature (wasm) serve it instead of running the code that makes the document, which
/// is about 20 KB of their gzipped size. A test keeps the two equal; after changing the
/// document, regenerate it with `WARDEN_UPDATE_OPENAPI=1 cargo test -p warden-service --lib openapi`.
pub const DOCUMENT_JSON: &str = include_str!("openapi.json");

fn body(schema: &str) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn ok(schema: &str) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn errors() -> Value {
    let e = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({"400": e, "401": e, "413": e, "422": e, "429": e})
}

fn post_op(summary: &str, req: &str, resp: &str) -> Value {
    let mut responses = errors();
    if let Some(map) = responses.as_object_mut() {
        map.insert("200".into(), ok(resp));
    }
    json!({"post": {"summary": summary, "requestBody": body(req), "responses": responses}})
}

/// `POST /api/v1/postcheck/stream`: fields in the query, the body streamed in and out, the
/// metadata record last (see `crate::stream`).
fn stream_op() -> Value {
    let q = |name: &str, required: bool, description: &str, schema: Value| json!({"name": name, "in": "query", "required": required, "description": description, "schema": schema});
    let s = json!({"type": "string"});
    let mut responses = errors();
    if let Some(map) = responses.as_object_mut() {
        map.insert("200".into(), json!({
            "description": "The governed stream, sent as it is released. `text` and `ndjson`: NDJSON lines (`{\"text\": ...}` pieces, or the input's lines with their text delta governed), then `{\"warden\": <StreamRecord>}`. `openai` and `anthropic`: the input's events with their text deltas governed (held-back text is released in a later event's delta; the rest in the event carrying `finish_reason`, or a synthetic one before `content_block_stop` / `data: [DONE]`), then `event: warden` with `data: <StreamRecord>`, then the input's terminator (`data: [DONE]` or `message_stop`). A deny (or bad input: `error` set, reason `error:invalid_request`) ends the stream with the record and no terminator; what was released before stays released.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }));
        map.insert("501".into(), json!({"description": "The runtime buffers responses (AWS Lambda through API Gateway, ALB or a buffered Function URL; Azure Functions): use POST /api/v1/postcheck, or a Lambda Function URL in RESPONSE_STREAM mode", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}));
    }
    json!({"post": {
        "summary": "Streaming postcheck of an AI answer: the body is governed as it arrives, equal to a one-shot postcheck of the whole text (for every decision but deny)",
        "parameters": [
            q("tool", true, "The tool whose answer is streamed", s.clone()),
            q("scope", false, "Its scope", s.clone()),
            q("format", false, "Shape of the body (default text)", json!({"type": "string", "enum": ["text", "ndjson", "openai", "anthropic"]})),
            q("field", false, "ndjson: JSON pointer of the text delta (default: the first string among /choices/0/delta/content, /message/content, /response, /delta/text, /text, /content)", s.clone()),
            q("user_id", false, "End user (rate limit key, decision record)", s.clone()),
            q("corr_id", false, "Correlation id", s.clone()),
            q("tags", false, "Comma-separated tags", s.clone()),
            q("policy_config", false, "The request's own policy as JSON (URL-encoded, at most 16 KiB), validated as for POST /api/v1/postcheck: refused (422 policy_config_disabled) with WARDEN_REQUEST_POLICY=off and, for streams, also with tighten (combining both policies needs the whole text); with replace it governs the stream. An invalid one is a 422 (postcheck would apply on_error to the whole text)", s.clone()),
            q("tool_config", false, "Tool configuration as JSON (URL-encoded, at most 16 KiB): metadata.purchase_amount|amount|price|cost and metadata.model feed budgets", s),
        ],
        "requestBody": {"required": true, "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        }},
        "responses": responses,
    }})
}

/// The document.
pub fn document() -> Value {
    let decision = json!({"type": "string", "enum": ["allow", "deny", "transform", "confirm"]});
    let policy_id = json!({"type": "string", "enum": ["deny-exec", "tool-access", "defaults", "net-redact-regex", "strict-fallback", "on-error", "detokenize"]});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Warden",
            "version": warden_engine::VERSION,
            "description": "AI-governance gate: policy decisions and PII detection/transformation for agent tool calls. Offsets are Unicode scalar (char) indices."
        },
        "components": {
            "securitySchemes": {"governsKey": {"type": "apiKey", "in": "header", "name": "X-Governs-Key"}},
            "schemas": {
                "StreamRecord": {"type": "object", "required": ["decision", "reasons", "policy_id", "pii_counts"], "properties": {
                    "decision": decision, "reasons": {"type": "array", "items": {"type": "string"}}, "policy_id": policy_id,
                    "pii_counts": {"type": "object", "additionalProperties": {"type": "integer"}}, "request_id": {"type": "string"},
                    "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                    "budget_status": {"type": "object", "description": "As in a postcheck response, when the request names a user_id and budgets are on"},
                    "budget_info": {"type": "object", "description": "As in a postcheck response (the LLM estimate is for the characters of text the stream governed)"}}},
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}}}},
                "CheckRequest": {"type": "object", "required": ["tool", "raw_text"], "properties": {
                    "tool": {"type": "string"}, "scope": {"type": "string"}, "raw_text": {"type": "string"},
                    "corr_id": {"type": "string"}, "user_id": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                    "policy_config": {"type": "object", "description": "A policy document replacing the server's for this request"},
                    "tool_config": {"type": "object", "description": "metadata.purchase_amount|amount|price|cost and metadata.model feed budgets"}}},
                "CheckResponse": {"type": "object", "required": ["decision", "raw_text_out", "reasons", "policy_id", "ts"], "properties": {
                    "decision": decision, "raw_text_out": {"type": ["string", "null"]}, "reasons": {"type": "array", "items": {"type": "string"}},
                    "policy_id": policy_id, "ts": {"type": "integer"}, "budget_status": {"type": "object"}, "budget_info": {"type": "object"},
                    "error": {"type": "object"}}},
                "RedactRequest": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
                "RedactResponse": {"type": "object", "required": ["redacted", "matches"], "properties": {
                    "redacted": {"type": "string"},
                    "matches": {"type": "array", "items": {"type": "object", "properties": {
                        "type": {"type": "string"}, "start": {"type": "integer"}, "end": {"type": "integer"}}}}}},
                "EvaluateRequest": {"type": "object", "required": ["payload", "agent_id"], "properties": {
                    "payload": {}, "agent_id": {"type": "string"}, "tool": {"type": "string"},
                    "direction": {"type": "string", "enum": ["ingress", "egress"]}, "scope": {"type": "string"},
                    "policy_config": {"type": "object"}, "corr_id": {"type": "string"}, "user_id": {"type": "string"}}},
                "EvaluateResponse": {"type": "object", "required": ["decision", "reasons", "violations", "modified_payload", "pii_found"], "properties": {
                    "decision": decision, "reasons": {"type": "array", "items": {"type": "string"}},
                    "violations": {"type": "array", "items": {"type": "string"}}, "modified_payload": {},
                    "pii_found": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "action": {"type": "string"}}}},
                    "policy_id": policy_id, "ts": {"type": "integer"}}},
                "BatchRequest": {"type": "object", "required": ["requests"], "properties": {"requests": {"type": "array", "items": {
                    "type": "object", "required": ["action"], "properties": {"action": {"type": "string", "enum": ["precheck", "postcheck", "evaluate"]}}}}}},
                "BatchResponse": {"type": "object", "required": ["processed", "summary", "results"], "properties": {
                    "processed": {"type": "integer"},
                    "summary": {"type": "object", "properties": {"allow": {"type": "integer"}, "deny": {"type": "integer"}, "transform": {"type": "integer"}, "confirm": {"type": "integer"}, "error": {"type": "integer"}}},
                    "results": {"type": "array", "items": {"type": "object"}}}},
                "Invoke": {"type": "object", "required": ["action"], "properties": {"action": {"type": "string", "enum": ["precheck", "postcheck", "redact", "evaluate", "batch", "health", "ready"]}},
                    "description": "The other fields are those of the action's request"},
                "Health": {"type": "object", "properties": {"ok": {"type": "boolean"}, "service": {"type": "string"}, "version": {"type": "string"}}},
                "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}, "status": {"type": "string"}, "checks": {"type": "object", "additionalProperties": {
                    "type": "object", "properties": {"status": {"type": "string", "enum": ["ok", "warning", "error", "disabled"]}, "detail": {"type": "string"}}}}}}
            }
        },
        "security": [{"governsKey": []}, {}],
        "paths": {
            "/": post_op("Invoke envelope: {action, ...} runs the same operations as the routes", "Invoke", "Health"),
            "/api/v1/precheck": post_op("Evaluate raw_text before tool execution (ingress)", "CheckRequest", "CheckResponse"),
            "/api/v1/postcheck": post_op("Evaluate tool output (egress)", "CheckRequest", "CheckResponse"),
            "/api/v1/postcheck/stream": stream_op(),
            "/api/v1/redact": post_op("Detect and redact PII", "RedactRequest", "RedactResponse"),
            "/api/v1/evaluate": post_op("JSON mode: govern every string leaf of a payload", "EvaluateRequest", "EvaluateResponse"),
            "/api/v1/batch": post_op("Many precheck/postcheck/evaluate requests; per-item errors never fail the batch", "BatchRequest", "BatchResponse"),
            "/api/v1/health": {"get": {"summary": "Liveness", "security": [], "responses": {"200": ok("Health")}}},
            "/api/v1/ready": {"get": {"summary": "Readiness per component", "security": [], "responses": {"200": ok("Ready"), "503": ok("Ready")}}},
            "/api/metrics": {"get": {"summary": "Prometheus text format", "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/api/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OK"}}}}
        }
    });
    crate::service::detokenize::openapi(&mut doc);
    doc
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[test]
    fn generated_json_is_the_document() {
        let text = serde_json::to_string(&super::document()).unwrap();
        if std::env::var_os("WARDEN_UPDATE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/openapi.json");
            std::fs::write(path, format!("{text}\n")).unwrap();
        }
        assert!(
            super::DOCUMENT_JSON.trim_end() == text,
            "src/openapi.json is stale: WARDEN_UPDATE_OPENAPI=1 cargo test -p warden-service --lib openapi"
        );
    }
}
