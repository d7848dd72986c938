//! The platform-neutral part of the package: options, the four synchronous operations and the
//! HTTP handler, on `serde_json` values. Free of JavaScript types so that it is tested and
//! benchmarked natively; `lib.rs` only converts between JS values and these.

use axum::body::Body;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;
use warden_engine::budget::Money;
use warden_engine::policy_file::parse_policy;
use warden_engine::{
    CheckRequest, CheckResponse, Detector, Direction, ErrorCode, EvaluateRequest, EvaluateResponse, Policy,
    RedactResponse,
};
use warden_service::budget::BudgetStore;
use warden_service::clock::Clock;
use warden_service::error::{from_value, ApiError};
use warden_service::events::EventsConfig;
use warden_service::policy_source::PolicySource;
use warden_service::router::{router, AppState};
use warden_service::service::{Budgets, Observer, Operation, RequestMeta, Service, ServiceBuilder};
use warden_service::settings::Settings;

/// `agent_id` of an `evaluate` that names none.
pub const DEFAULT_AGENT_ID: &str = "vercel-edge";

/// Options that are settings of SPEC §9, by their variable; the value of those marked secret
/// is never repeated in an error.
const SETTING_OPTIONS: [(&str, &str, bool); 11] = [
    ("piiTokenSalt", "PII_TOKEN_SALT", true),
    ("onError", "ON_ERROR", false),
    ("apiKeys", "WARDEN_API_KEYS", true),
    ("bodyLimit", "WARDEN_BODY_LIMIT", false),
    ("maxBatch", "WARDEN_MAX_BATCH", false),
    ("environment", "WARDEN_ENV", false),
    ("orgId", "WARDEN_ORG_ID", false),
    ("requestPolicy", "WARDEN_REQUEST_POLICY", false),
    ("encryptKeys", "WARDEN_ENCRYPT_KEYS", true),
    ("detokenizeKeys", "WARDEN_DETOKENIZE_KEYS", true),
    ("budgetDefaultLimit", "BUDGET_DEFAULT_LIMIT", false),
];

/// Options of `new Warden(options)`. Unknown keys are rejected so that a typo such as
/// `piiTokensalt` fails loudly instead of silently running with the default salt.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    /// A policy document (object), or its YAML / JSON text.
    #[serde(default)]
    policy: Option<Value>,
    /// Name used in policy error messages (e.g. the file it was read from).
    #[serde(default)]
    policy_name: Option<String>,
    /// `PII_TOKEN_SALT`.
    #[serde(default)]
    pii_token_salt: Option<String>,
    /// `ON_ERROR`: `block` (default), `pass` or `best_effort`.
    #[serde(default)]
    on_error: Option<String>,
    /// `WARDEN_API_KEYS` for [`Core::handle`]: comma-separated text or an array of keys.
    #[serde(default)]
    api_keys: Option<Value>,
    /// Largest request body [`Core::handle`] accepts, in bytes (default 1 MiB).
    #[serde(default)]
    body_limit: Option<usize>,
    /// Most items in one batch (default 1000).
    #[serde(default)]
    max_batch: Option<usize>,
    /// Environment name reported by readiness (default `production`).
    #[serde(default)]
    environment: Option<String>,
    /// Organisation id (`WARDEN_ORG_ID`).
    #[serde(default)]
    org_id: Option<String>,
    /// `WARDEN_REQUEST_POLICY`: `replace` (default), `tighten` or `off`.
    #[serde(default)]
    request_policy: Option<String>,
    /// `WARDEN_ENCRYPT_KEYS`: keys of the `encrypt` action, `kid:base64key` text or an array
    /// of such entries, the first one active.
    #[serde(default)]
    encrypt_keys: Option<Value>,
    /// `WARDEN_DETOKENIZE_KEYS` for [`Core::handle`]: API keys that may call
    /// `/api/v1/detokenize`, as `apiKeys`.
    #[serde(default)]
    detokenize_keys: Option<Value>,
    /// `BUDGET_DEFAULT_LIMIT` (USD) of users without an explicit limit, when budgets are on.
    #[serde(default)]
    budget_default_limit: Option<f64>,
}

/// Makes the budget store from the default limit.
pub type MakeBudgetStore = Box<dyn FnOnce(Money) -> Arc<dyn BudgetStore>>;
/// Makes a decision observer from the events settings.
pub type MakeObserver = Box<dyn FnOnce(&EventsConfig) -> Arc<dyn Observer>>;

/// What the host plugs in besides the options: budgets (`None`: off) and observers of
/// each decision.
#[derive(Default)]
pub struct Hooks {
    /// Makes the budget store from the default limit.
    pub budgets: Option<MakeBudgetStore>,
    /// Makes decision observers from the events settings (e.g. `onDecision`).
    pub observers: Vec<MakeObserver>,
    /// The bytes of `warden-names.bin`: the person detector's name tables (option `nameTables`).
    pub names: Option<Vec<u8>>,
}

impl core::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hooks")
            .field("budgets", &self.budgets.is_some())
            .field("observers", &self.observers.len())
            .field("names", &self.names.as_ref().map(Vec::len))
            .finish()
    }
}

/// An HTTP response produced by [`Core::handle`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpResult {
    /// Status code.
    pub status: u16,
    /// Response headers as `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    /// Response body (JSON, or Prometheus text).
    pub body: String,
}

/// One configured Warden: policy, salt, detector (built once) and the HTTP router.
pub struct Core {
    service: Arc<Service>,
    router: Router,
}

impl core::fmt::Debug for Core {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core").field("service", &self.service).finish_non_exhaustive()
    }
}

impl Core {
    /// Builds a Warden from `options` (a JSON object, or `null` for all defaults). Errors are
    /// messages naming the offending option.
    pub fn new(options: Value, clock: Arc<dyn Clock>) -> Result<Core, String> {
        Core::with_hooks(options, clock, Hooks::default())
    }

    /// [`Core::new`] with budgets and decision observers.
    pub fn with_hooks(options: Value, clock: Arc<dyn Clock>, hooks: Hooks) -> Result<Core, String> {
        let options: Options = match options {
            Value::Null => Options::default(),
            Value::Object(_) => serde_path_to_error::deserialize(options).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    format!("invalid options: {}", e.inner())
                } else {
                    format!("invalid option `{path}`: {}", e.inner())
                }
            })?,
            other => {
                return Err(format!("options must be an object, not {}", warden_service::error::kind(&other)));
            }
        };
        let source = load_policy(options.policy, options.policy_name)?;
        let vars: Vec<(&str, String)> = [
            ("PII_TOKEN_SALT", options.pii_token_salt),
            ("ON_ERROR", options.on_error),
            ("WARDEN_API_KEYS", list_option("apiKeys", options.api_keys)?),
            ("WARDEN_BODY_LIMIT", options.body_limit.map(|n| n.to_string())),
            ("WARDEN_MAX_BATCH", options.max_batch.map(|n| n.to_string())),
            ("WARDEN_ENV", options.environment),
            ("WARDEN_ORG_ID", options.org_id),
            ("WARDEN_REQUEST_POLICY", options.request_policy),
            ("WARDEN_ENCRYPT_KEYS", list_option("encryptKeys", options.encrypt_keys)?),
            ("WARDEN_DETOKENIZE_KEYS", list_option("detokenizeKeys", options.detokenize_keys)?),
            ("BUDGET_DEFAULT_LIMIT", options.budget_default_limit.map(|n| n.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        let lookup = |k: &str| vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone());
        let settings = Settings::from_lookup(lookup).map_err(|e| {
            let (option, secret) = SETTING_OPTIONS
                .iter()
                .find(|(_, var, _)| *var == e.variable)
                .map_or((e.variable, true), |(option, _, secret)| (*option, *secret));
            match lookup(e.variable).filter(|_| !secret) {
                Some(value) => format!("invalid option `{option}` (`{value}`): {}", e.problem),
                None => format!("invalid option `{option}`: {}", e.problem),
            }
        })?;
        let mut config = settings.service_config();
        config.default_agent_id = Some(String::from(DEFAULT_AGENT_ID));
        let mut builder = ServiceBuilder::new(Arc::new(source), settings.token_key(), config).clock(clock);
        if let Some(make) = hooks.budgets.filter(|_| settings.budget_enabled) {
            let store = make(settings.budget_default_limit);
            builder = builder.budgets(Budgets { store, prices: settings.prices.clone() });
        }
        if let Some(tables) = hooks.names {
            let detector = Detector::with_names(&tables).map_err(|e| format!("invalid option `nameTables`: {e}"))?;
            builder = builder.detector(detector);
        }
        for make in hooks.observers {
            builder = builder.observer(make(&settings.events));
        }
        let service = builder.build().map_err(|e| e.to_string())?;
        let service = Arc::new(service);
        let api_keys = settings.api_keys.is_enabled().then(|| Arc::new(settings.api_keys.clone()));
        let router = router(AppState { service: Arc::clone(&service), api_keys, metrics: None });
        Ok(Core { service, router })
    }

    /// The service (policy, key, detector, settings).
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    fn now_secs(&self) -> i64 {
        self.service.clock().now_ms().div_euclid(1000)
    }

    /// `POST /api/v1/precheck` (ingress) or `/postcheck` (egress) on a request value.
    pub fn check(&self, request: Value, direction: Direction) -> Result<CheckResponse, ApiError> {
        let req: CheckRequest = from_value(request)?;
        self.check_names(req.policy_config.as_ref())?;
        Ok(self.check_request(&req, direction))
    }

    /// [`Core::check`] on an already typed request.
    pub fn check_request(&self, req: &CheckRequest, direction: Direction) -> CheckResponse {
        let policy = self.service.policy_source().get();
        let verdict = self.service.gate(&policy).check(req, direction);
        CheckResponse::from_verdict(verdict, self.now_secs())
    }

    /// `op` through the whole service, as the HTTP route does: budgets, observers
    /// (`onDecision`), audit of the decision. `POST /api/v1/<op>` without HTTP.
    pub async fn run(service: Arc<Service>, op: Operation, request: Value) -> Result<Value, ApiError> {
        let meta = RequestMeta { default_agent_id: Some(String::from(DEFAULT_AGENT_ID)), ..RequestMeta::default() };
        service.run(op, request, &meta).await
    }

    /// `POST /api/v1/evaluate` (JSON mode) on a request value.
    pub fn evaluate(&self, request: Value) -> Result<EvaluateResponse, ApiError> {
        let req: EvaluateRequest = from_value(request)?;
        self.check_names(req.policy_config.as_ref())?;
        let policy = self.service.policy_source().get();
        Ok(self.service.gate(&policy).evaluate(&req, self.now_secs()))
    }

    /// `POST /api/v1/detokenize` for the process that holds the keys: restores the tokens of
    /// `{raw_text}` or `{payload}` (see [`Service::detokenize_in_process`]).
    pub fn detokenize(&self, request: Value) -> Result<Value, ApiError> {
        self.service.detokenize_in_process(request)
    }

    /// A request's `policy_config` that looks for person names is refused without name tables,
    /// as the service refuses it on the HTTP routes (the gate alone would find fewer names).
    fn check_names(&self, config: Option<&Value>) -> Result<(), ApiError> {
        if self.service.has_name_tables() {
            return Ok(());
        }
        // An invalid policy_config is the gate's to answer (per `on_error`).
        if config.and_then(|c| Policy::from_json_value(c).ok()).is_some_and(|p| p.detect_extra().person) {
            let e = ApiError::invalid_request(warden_service::service::builder::NO_NAME_TABLES);
            return Err(e.with_field("policy_config.detect_extra"));
        }
        Ok(())
    }

    /// `POST /api/v1/redact` on a text.
    pub fn redact(&self, text: &str) -> RedactResponse {
        let policy = self.service.policy_source().get();
        self.service.gate(&policy).redact(text)
    }

    /// The HTTP router serving every route of SPEC §2 (the same router as the native server).
    pub fn router(&self) -> Router {
        self.router.clone()
    }
}

/// Runs one HTTP request through `router`. Never fails: a request that cannot even be built
/// (bad method or path) is answered like any other client error, with a 400 JSON body.
pub async fn handle(
    router: Router,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> HttpResult {
    let request = match build_request(method, path, headers, body) {
        Ok(r) => r,
        Err(e) => return error_result(&e),
    };
    let response = match router.oneshot(request).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
        .collect();
    // Bodies are the router's own JSON or text, already in memory: no limit needed to read them.
    let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            return error_result(&ApiError::new(ErrorCode::Internal, format!("could not read the response: {e}")))
        }
    };
    HttpResult { status, headers, body }
}

pub(crate) fn build_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Result<http::Request<Body>, ApiError> {
    let method = http::Method::from_bytes(method.as_bytes())
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("`{method}` is not an HTTP method")))?;
    if !path.starts_with('/') {
        return Err(ApiError::new(ErrorCode::BadRequest, format!("path `{path}` must start with `/`")));
    }
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(body)).map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("invalid request: {e}")))
}

fn error_result(e: &ApiError) -> HttpResult {
    HttpResult {
        status: e.status(),
        headers: vec![(String::from("content-type"), String::from("application/json"))],
        body: e.body().to_string(),
    }
}

/// The policy of `options.policy`, or the bundled one; errors name the field (and, for YAML
/// or JSON text, the line and column).
fn load_policy(policy: Option<Value>, name: Option<String>) -> Result<PolicySource, String> {
    match policy {
        None | Some(Value::Null) => PolicySource::bundled().map_err(|e| format!("bundled policy: {e}")),
        Some(Value::String(text)) => {
            let name = name.unwrap_or_else(|| String::from("options.policy"));
            PolicySource::parse(&text, name).map_err(|e| format!("invalid policy: {e}"))
        }
        Some(doc @ Value::Object(_)) => {
            // Through the text parser rather than `Policy::from_json_value` for its field paths.
            let name = name.unwrap_or_else(|| String::from("options.policy"));
            let text = doc.to_string();
            parse_policy("options.policy.json", &text).map(|p| PolicySource::new(p, name.clone())).map_err(|e| {
                // Line and column of our own serialisation would mean nothing to the caller.
                let e = e.error;
                if e.field.is_empty() {
                    format!("invalid policy ({name}): {}", e.message)
                } else {
                    format!("invalid policy ({name}): field `{}`: {}", e.field, e.message)
                }
            })
        }
        Some(other) => Err(format!(
            "invalid option `policy`: expected a policy object or its YAML/JSON text, not {}",
            warden_service::error::kind(&other)
        )),
    }
}

/// A list option (`apiKeys`, `encryptKeys`, `detokenizeKeys`) as its variable's
/// comma-separated text: a string, or an array of entries.
fn list_option(option: &str, value: Option<Value>) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Array(items)) => {
            let mut keys = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(k) if !k.contains(',') && !k.trim().is_empty() => keys.push(k),
                    _ => {
                        return Err(format!(
                            "invalid option `{option}[{i}]`: expected a non-empty string without commas"
                        ))
                    }
                }
            }
            Ok(Some(keys.join(",")))
        }
        Some(other) => Err(format!(
            "invalid option `{option}`: expected a string or an array of strings, not {}",
            warden_service::error::kind(&other)
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;
    use warden_service::clock::FixedClock;

    fn core(options: Value) -> Result<Core, String> {
        Core::new(options, Arc::new(FixedClock::new(1_700_000_000_123)))
    }

    #[test]
    fn defaults_use_the_bundled_policy() {
        let w = core(Value::Null).unwrap();
        let r =
            w.check(json!({"tool": "verify_identity", "raw_text": "SSN: 123-45-6789"}), Direction::Ingress).unwrap();
        assert_eq!(r.policy_id.name(), "tool-access");
        assert_eq!(r.ts, 1_700_000_000);
    }

    #[test]
    fn policy_as_yaml_text_and_as_object_agree() {
        let yaml = "version: v1\ndeny_tools: [rm.rf]\n";
        let a = core(json!({"policy": yaml, "piiTokenSalt": "s"})).unwrap();
        let b = core(json!({"policy": {"version": "v1", "deny_tools": ["rm.rf"]}, "piiTokenSalt": "s"})).unwrap();
        let req = json!({"tool": "rm.rf", "raw_text": "x"});
        let ra = a.check(req.clone(), Direction::Ingress).unwrap();
        let rb = b.check(req, Direction::Ingress).unwrap();
        assert_eq!(ra, rb);
        assert_eq!(ra.reasons, vec!["blocked tool: rm.rf".parse().unwrap()]);
    }

    #[test]
    fn invalid_options_name_the_problem() {
        let e = core(json!({"piiTokensalt": "x"})).unwrap_err();
        assert!(e.contains("piiTokensalt"), "{e}");
        let e = core(json!({"piiTokenSalt": 3})).unwrap_err();
        assert!(e.contains("`piiTokenSalt`"), "{e}");
        let e = core(json!({"onError": "maybe"})).unwrap_err();
        assert!(e.contains("onError") && e.contains("maybe"), "{e}");
        let e = core(json!({"policy": 5})).unwrap_err();
        assert!(e.contains("policy") && e.contains("a number"), "{e}");
        let e = core(json!({"policy": "version: v1\ndeny_tools: 3\n", "policyName": "p.yaml"})).unwrap_err();
        assert!(e.starts_with("invalid policy: p.yaml:2:"), "{e}");
        let e = core(json!({"policy": {"tool_access": {"t": {"action": "explode"}}}})).unwrap_err();
        assert!(e.contains("field `tool_access.t.action`"), "{e}");
        assert!(core(json!([1])).unwrap_err().contains("an array"));
        assert!(core(json!({"bodyLimit": 0})).unwrap_err().contains("bodyLimit"));
        assert!(core(json!({"apiKeys": ["a,b"]})).unwrap_err().contains("apiKeys[0]"));
        assert!(core(json!({"apiKeys": ","})).unwrap_err().contains("apiKeys"));
    }

    #[test]
    fn invalid_requests_are_422_naming_the_field() {
        let w = core(Value::Null).unwrap();
        let e = w.check(json!({"tool": "t"}), Direction::Ingress).unwrap_err();
        assert_eq!((e.status(), e.field.as_deref()), (422, Some("raw_text")));
        let e = w.check(json!("text"), Direction::Egress).unwrap_err();
        assert_eq!(e.status(), 422);
        let e = w.evaluate(json!({"payload": {}})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("agent_id"));
    }

    #[test]
    fn encrypt_and_detokenize() {
        let keys = ["k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "k1:AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"];
        let policy = json!({"defaults": {"egress": {"action": "encrypt"}}});
        let e = core(json!({"policy": policy})).unwrap_err();
        assert!(e.contains("defaults.egress.action") && e.contains("WARDEN_ENCRYPT_KEYS"), "{e}");
        let e = core(json!({"encryptKeys": ["k1:SECRETSECRET"]})).unwrap_err();
        assert!(e.starts_with("invalid option `encryptKeys`: entry 1") && !e.contains("SECRET"), "{e}");
        let w = core(json!({"policy": policy, "encryptKeys": keys})).unwrap();
        let r = w.check(json!({"tool": "t", "raw_text": "mail bob@corp.io"}), Direction::Egress).unwrap();
        let out = r.raw_text_out.unwrap();
        assert!(out.starts_with("mail encpii.k2.email_address."), "{out}");
        let back = w.detokenize(json!({"raw_text": out})).unwrap();
        assert_eq!(back["raw_text"], "mail bob@corp.io");
        assert_eq!(back["key_ids"], json!({"k2": 1}));
        let e = core(Value::Null).unwrap().detokenize(json!({"raw_text": out})).unwrap_err();
        assert_eq!(e.status(), 403);
        let e = w.detokenize(json!({"text": out})).unwrap_err();
        assert_eq!((e.status(), e.field.as_deref()), (422, Some("raw_text")));
    }

    #[test]
    fn handle_serves_the_router() {
        let w = core(json!({"piiTokenSalt": "s", "apiKeys": ["k1"]})).unwrap();
        let run = |method: &str, path: &str, headers: Vec<(String, String)>, body: &str| {
            let fut = handle(w.router(), method, path, &headers, body.as_bytes().to_vec());
            // Every future of the router completes without waiting on I/O here.
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut fut = std::pin::pin!(fut);
            match fut.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(r) => r,
                std::task::Poll::Pending => panic!("router future did not complete"),
            }
        };
        use std::future::Future;
        let health = run("GET", "/api/v1/health", vec![], "");
        assert_eq!(health.status, 200);
        let unauth = run("POST", "/api/v1/redact", vec![], r#"{"text":"a@b.io"}"#);
        assert_eq!(unauth.status, 401);
        let key = vec![("x-governs-key".to_string(), "k1".to_string())];
        let ok = run("POST", "/api/v1/redact", key.clone(), r#"{"text":"a@b.io"}"#);
        assert_eq!(ok.status, 200, "{}", ok.body);
        let body: Value = serde_json::from_str(&ok.body).unwrap();
        assert_eq!(body["redacted"], "<USER_EMAIL>");
        assert_eq!(run("POST", "/api/v1/precheck", key.clone(), "{").status, 400);
        assert_eq!(run("BAD METHOD", "/", key.clone(), "").status, 400);
        assert_eq!(run("GET", "nope", key, "").status, 400);
    }
}
