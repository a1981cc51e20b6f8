#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_clienttest::fuzz_client_bytes(data));
