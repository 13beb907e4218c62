//! Fuzz target: `switchboard::fuzzing::handshake` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard::fuzzing::handshake(data));
