//! Log lines in Cloud Logging's structured format: one JSON object per line with `severity`,
//! `message` and, for work done for a request, `logging.googleapis.com/trace` (from
//! `X-Cloud-Trace-Context` or W3C `traceparent`) so that the line is grouped under the request
//! in the console. Lines carry ids, decisions and reasons only, never message content.

use http::HeaderMap;
use serde_json::{Map, Value};

/// A request's trace, as Cloud Logging names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// `projects/P/traces/T` (just `T` when the project is unknown).
    pub trace: Option<String>,
    /// The span id, when given.
    pub span_id: Option<String>,
    /// Whether the request was sampled.
    pub sampled: bool,
}

impl Trace {
    /// The trace of a request: `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`, else
    /// `traceparent: 00-TRACE_ID-SPAN_ID-FLAGS`.
    pub fn from_headers(headers: &HeaderMap, project: Option<&str>) -> Trace {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (trace_id, span_id, sampled) = if let Some(v) = get("x-cloud-trace-context") {
            let (ids, options) = v.split_once(';').unwrap_or((v, ""));
            let (trace, span) = ids.split_once('/').map_or((ids, None), |(t, s)| (t, Some(s)));
            (trace, span, options.trim() == "o=1")
        } else if let Some(v) = get("traceparent") {
            let mut parts = v.split('-').skip(1);
            let (trace, span, flags) = (parts.next().unwrap_or(""), parts.next(), parts.next().unwrap_or("00"));
            (trace, span, flags.ends_with('1'))
        } else {
            return Trace::default();
        };
        // Ids are hex (32 for traces); anything else is not worth logging.
        let hex = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric());
        if !hex(trace_id, 32) {
            return Trace::default();
        }
        Trace {
            trace: Some(match project {
                Some(p) => format!("projects/{p}/traces/{trace_id}"),
                None => trace_id.to_owned(),
            }),
            span_id: span_id.map(str::trim).filter(|s| hex(s, 32)).map(str::to_owned),
            sampled,
        }
    }
}

/// Writes one structured line to stderr (stdout carries the core's audit lines).
pub fn log(severity: &str, message: &str, trace: Option<&Trace>, fields: Map<String, Value>) {
    eprintln!("{}", line(severity, message, trace, fields));
}

/// The line [`log`] writes.
pub fn line(severity: &str, message: &str, trace: Option<&Trace>, fields: Map<String, Value>) -> String {
    let mut out = Map::new();
    out.insert("severity".into(), Value::from(severity));
    out.insert("message".into(), Value::from(message));
    if let Some(t) = trace {
        if let Some(id) = &t.trace {
            out.insert("logging.googleapis.com/trace".into(), Value::from(id.as_str()));
        }
        if let Some(s) = &t.span_id {
            out.insert("logging.googleapis.com/spanId".into(), Value::from(s.as_str()));
        }
        if t.trace.is_some() {
            out.insert("logging.googleapis.com/trace_sampled".into(), Value::from(t.sampled));
        }
    }
    out.extend(fields);
    Value::Object(out).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn cloud_trace_context() {
        let t = Trace::from_headers(
            &headers("x-cloud-trace-context", "105445aa7843bc8bf206b12000100000/1;o=1"),
            Some("my-proj"),
        );
        assert_eq!(t.trace.as_deref(), Some("projects/my-proj/traces/105445aa7843bc8bf206b12000100000"));
        assert_eq!((t.span_id.as_deref(), t.sampled), (Some("1"), true));
        let line: Value = serde_json::from_str(&line("INFO", "m", Some(&t), Map::new())).unwrap();
        assert_eq!(line["severity"], "INFO");
        assert_eq!(line["logging.googleapis.com/trace"], "projects/my-proj/traces/105445aa7843bc8bf206b12000100000");
        assert_eq!(line["logging.googleapis.com/spanId"], "1");
    }

    #[test]
    fn traceparent_and_garbage() {
        let t = Trace::from_headers(
            &headers("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None,
        );
        assert_eq!(t.trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(t.sampled);
        assert_eq!(Trace::from_headers(&headers("x-cloud-trace-context", "\"quoted\" junk"), None), Trace::default());
        assert_eq!(Trace::from_headers(&HeaderMap::new(), None), Trace::default());
        let line: Value = serde_json::from_str(&line("ERROR", "x", Some(&Trace::default()), Map::new())).unwrap();
        assert!(line.get("logging.googleapis.com/trace").is_none());
    }
}
