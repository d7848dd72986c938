//! Any bytes as a custom-handler invocation body: parsing and every reader of `Data` and
//! `Metadata` must return a value or an error, never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden_azure::payload::fuzz_invocation(data);
});
