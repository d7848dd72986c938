//! `warden`: the local server and command-line tools.

use clap::{Parser, Subcommand};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use warden_service::clock::SystemClock;
use warden_service::native;
use warden_service::service::{Service, ServiceBuilder};
use warden_service::settings::Settings;

mod serve;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Warden: AI-governance gate (policy decisions and PII detection for agent tool calls)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (SPEC §2 routes) with the configured or bundled policy.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080", env = "WARDEN_ADDR")]
        addr: String,
        /// Policy file (YAML or JSON); overrides POLICY_FILE.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Validate policy files; exit 1 with `file:line:col: field ...` errors.
    Check {
        /// Policy files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Redact PII: text on stdin, redacted text on stdout.
    Redact {
        /// Policy file whose custom recognizers also apply.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Detect PII in JSONL: `{"id","text"}` per line in, `{"id","entities":[{type,start,end}]}` out (char offsets).
    /// Every type is reported, the opt-in ones (person, street_address) included.
    Detect {
        /// Policy file whose custom recognizers also apply.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Report only these types (comma-separated names, e.g. `person,email_address`).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
    },
    /// Evaluate one request (JSON on stdin) and print the response.
    Eval {
        /// Operation: precheck, postcheck or evaluate; an `action` field in the input wins.
        #[arg(long, default_value = "precheck")]
        op: String,
        /// Policy file; overrides POLICY_FILE.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Dead-letter queue tools.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Re-send every DLQ event to the configured sink; keep only those not delivered.
    Replay {
        /// DLQ file (default PRECHECK_DLQ).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { addr, policy } => serve::serve(&addr, policy),
        Command::Check { files } => check(&files),
        Command::Redact { policy } => redact(policy),
        Command::Detect { policy, types } => detect(policy, &types),
        Command::Eval { op, policy } => eval(&op, policy),
        Command::Dlq { command: DlqCommand::Replay { file } } => serve::dlq_replay(file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e}");
            ExitCode::from(2)
        }
    }
}

type CmdResult = Result<ExitCode, String>;

fn check(files: &[PathBuf]) -> CmdResult {
    let mut failed = false;
    for f in files {
        match warden_service::native::load_policy_file(f) {
            Ok(src) => {
                let p = src.get();
                println!(
                    "{}: ok (version {}, {} tool rules, {} custom types)",
                    f.display(),
                    p.version(),
                    p.tool_access().len(),
                    p.custom_pii().len()
                );
            }
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Settings from the process environment; `--policy` beats `POLICY_FILE`.
fn settings(policy: Option<PathBuf>) -> Result<Settings, String> {
    let mut s = Settings::from_lookup(|k| std::env::var(k).ok()).map_err(|e| format!("environment variable {e}"))?;
    if policy.is_some() {
        s.policy_file = policy;
    }
    Ok(s)
}

/// The policy and key of `warden serve`, without its stores and observers.
fn service(policy: Option<PathBuf>) -> Result<Service, String> {
    let s = settings(policy)?;
    let source = native::load_policy(native::policy_path(&s, &native::Platform::server("warden-default")).as_deref())?;
    ServiceBuilder::from_settings(&s, Arc::new(source))
        .clock(Arc::new(SystemClock::new()))
        .build()
        .map_err(|e| e.to_string())
}

fn redact(policy: Option<PathBuf>) -> CmdResult {
    let service = service(policy)?;
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
    let policy = service.policy_source().get();
    let out = service.gate(&policy).redact(&text);
    std::io::stdout().write_all(out.redacted.as_bytes()).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn detect(policy: Option<PathBuf>, types: &[String]) -> CmdResult {
    let service = service(policy)?;
    let policy = service.policy_source().get();
    if let Some(t) = types.iter().find(|t| policy.pii_type(t).is_none()) {
        return Err(format!("--types: unknown PII type `{t}`"));
    }
    let policy = policy.as_ref().clone().with_detect_extra(warden_engine::Extra::ALL);
    let gate = service.gate(&policy);
    // Replies are flushed before a read that may wait for input (a caller sending one line at a
    // time gets its answer at once), not after every line already at hand: one write per batch.
    let mut input = std::io::BufReader::with_capacity(64 << 10, std::io::stdin().lock());
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let mut buf = String::new();
    for n in 0.. {
        if !input.buffer().contains(&b'\n') {
            out.flush().map_err(|e| e.to_string())?;
        }
        buf.clear();
        if input.read_line(&mut buf).map_err(|e| format!("cannot read stdin line {}: {e}", n + 1))? == 0 {
            break;
        }
        // The line without its `\n` or `\r\n` (as `BufRead::lines` gives it).
        let line = buf.strip_suffix('\n').map_or(buf.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
        if line.trim().is_empty() {
            continue;
        }
        // Most lines are read straight into `DetectRequest` and answered without a JSON tree.
        let request = line.trim_start().starts_with('{').then(|| serde_json::from_str::<DetectRequest<'_>>(line));
        let written = match request {
            Some(Ok(req)) => {
                let reply = DetectReply { id: &req.id, entities: &entities(&gate, &req.text, types) };
                serde_json::to_writer(&mut out, &reply).map_err(std::io::Error::from)
            }
            _ => write!(out, "{}", detect_line(&gate, line, n + 1, types)),
        };
        written.and_then(|()| out.write_all(b"\n")).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// The members of a `warden detect` line, read without a `serde_json::Value` tree. A line this
/// does not take (`text` missing or not a string, a member twice, invalid JSON) goes through
/// `detect_line`, which words the error.
#[derive(serde::Deserialize)]
struct DetectRequest<'a> {
    #[serde(default)]
    id: serde_json::Value,
    #[serde(borrow)]
    text: std::borrow::Cow<'a, str>,
}

/// `{"id", "entities"}`, in that order (as `detect_line` writes it).
#[derive(serde::Serialize)]
struct DetectReply<'a> {
    id: &'a serde_json::Value,
    entities: &'a [warden_engine::Entity],
}

/// The entities of `text`, narrowed to `types` when given.
fn entities(gate: &warden_engine::Gate<'_>, text: &str, types: &[String]) -> Vec<warden_engine::Entity> {
    let mut entities = gate.redact(text).matches;
    if !types.is_empty() {
        entities.retain(|e| types.contains(&e.ty));
    }
    entities
}

/// One JSONL line → one JSONL reply; a bad line yields `{"id", "error"}`, never an abort.
fn detect_line(gate: &warden_engine::Gate<'_>, line: &str, n: usize, types: &[String]) -> serde_json::Value {
    let v: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return serde_json::json!({"id": null, "line": n, "error": format!("line {n}: invalid JSON: {e}")}),
    };
    let id = v.get("id").cloned().unwrap_or(serde_json::Value::Null);
    match v.get("text").and_then(serde_json::Value::as_str) {
        Some(text) => serde_json::json!({"id": id, "entities": entities(gate, text, types)}),
        None => serde_json::json!({"id": id, "line": n, "error": format!("line {n}: field `text` must be a string")}),
    }
}

fn eval(op: &str, policy: Option<PathBuf>) -> CmdResult {
    let service = service(policy)?;
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| format!("cannot read stdin: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let meta = warden_service::service::RequestMeta::default();
    let result = rt.block_on(async {
        let body = warden_service::error::parse_body::<serde_json::Value>(input.as_bytes())?;
        if body.get("action").is_some() {
            service.invoke(body, &meta).await
        } else {
            let op = warden_service::service::Operation::from_action(op)
                .ok_or_else(|| warden_service::error::ApiError::invalid_request(format!("unknown --op `{op}`")))?;
            service.run(op, body, &meta).await
        }
    });
    match result {
        Ok(v) => {
            println!("{v}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}", e.body());
            Ok(ExitCode::from(1))
        }
    }
}
