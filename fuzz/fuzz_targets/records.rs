//! Fuzz target: `switchboard::fuzzing::records` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::records(data));
