//! Fuzz target: `switchboard::fuzzing::ring` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::ring(data));
