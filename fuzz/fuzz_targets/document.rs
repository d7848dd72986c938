//! The document seam (`Service::govern_document`: S3 objects, blobs, DynamoDB images) on any
//! bytes and declared content type. It is also the template for a cloud adapter's event
//! parser (docs/security.md, "Fuzzing an adapter's event parser"): copy this file,
//! replace the body with the adapter's parser fed by `data`, and pass what it yields to the
//! core seam it calls, as here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_service::service::{Disposition, DocumentMeta};

const CONTENT_TYPES: [Option<&str>; 5] =
    [None, Some("application/json"), Some("text/plain"), Some("application/octet-stream"), Some("image/png")];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let (_, service) = warden_fuzz::service();
    let meta = DocumentMeta {
        source: "s3://fuzz-bucket".into(),
        name: "incoming/object".into(),
        content_type: CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()].map(String::from),
    };
    let outcome = service.govern_document(bytes, &meta);
    assert_eq!(
        outcome.output.is_some(),
        outcome.disposition == Disposition::Modify,
        "output exactly when modified: {outcome:?}"
    );
});
