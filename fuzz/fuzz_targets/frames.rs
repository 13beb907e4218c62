//! Fuzz target: `switchboard::fuzzing::frames` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::frames(data));
