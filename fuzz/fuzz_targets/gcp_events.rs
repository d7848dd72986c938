//! The Google Cloud adapter's push and CloudEvent parser (`warden_gcp::push::parse`), following
//! the `document` template. The input is an HTTP request as the service receives it: header
//! lines `name: value` up to the first blank line, then the body (no blank line: no headers),
//! so the wrapped, unwrapped (`x-goog-pubsub-*`), binary (`ce-*`) and structured shapes are all
//! reachable. What parses goes through the core's message seam as the adapter hands it over;
//! what does not must be a `Malformed` naming the problem, which the adapter acknowledges.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use warden_gcp::push::{self, MAX_ATTRIBUTES};
use warden_service::service::MessageOutcome;

/// Headers a request may carry here (HTTP servers refuse far more long before the parser).
const MAX_HEADERS: usize = 128;

fn request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let mut headers = HeaderMap::new();
    let Some(split) = data.windows(2).position(|w| w == b"\n\n") else { return (headers, data) };
    let (head, body) = (&data[..split], &data[split + 2..]);
    for line in head.split(|&b| b == b'\n').take(MAX_HEADERS) {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    (headers, body)
}

fuzz_target!(|data: &[u8]| {
    let (headers, body) = request(data);
    match push::parse(&headers, body) {
        Ok(message) => {
            assert!(message.attributes.len() <= MAX_ATTRIBUTES, "{} attributes", message.attributes.len());
            assert!(message.message_id.as_ref().is_none_or(|id| !id.is_empty()), "empty message id");
            let meta = message.meta("fuzz-pubsub");
            assert!(!meta.default_agent_id.is_empty() && meta.attempt > 0, "{meta:?}");
            let (runtime, service) = warden_fuzz::service();
            match runtime.block_on(service.handle_message(&message.data, &meta)) {
                MessageOutcome::Done(_) | MessageOutcome::Duplicate(_) => {}
                MessageOutcome::Reject(e) => {
                    assert!(e.status() < 500, "no 5xx from a message with memory stores: {e:?}");
                    warden_fuzz::assert_error_body(e.status(), &e.body());
                }
                MessageOutcome::Retry(e) => panic!("retry without a store that can fail: {e:?}"),
            }
        }
        Err(bad) => assert!(!bad.problem.is_empty(), "a malformed push must name its problem"),
    }
});
