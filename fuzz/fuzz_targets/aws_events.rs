//! The AWS adapter's event parsers (`adapters/aws`), following the `document` template: any
//! JSON as a Lambda event is classified by shape and its HTTP origin read, any object converted
//! from DynamoDB attribute values, and any text decoded as an S3 key. None may panic; what they
//! yield stays bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = warden_aws::s3::decode_key(&String::from_utf8_lossy(data)) {
        assert!(!key.is_empty() && key.len() <= 1024, "decoded key out of bounds: {} bytes", key.len());
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = warden_aws::classify(&event);
    let _ = warden_aws::http::origin(&event);
    if let serde_json::Value::Object(item) = &event {
        let _ = warden_aws::attr::item_to_json(item);
    }
});
