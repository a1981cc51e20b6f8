#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_probe::client_test::fuzz_client_bytes(data));
