#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_probe::heartbleed::fuzz_server_bytes(data));
