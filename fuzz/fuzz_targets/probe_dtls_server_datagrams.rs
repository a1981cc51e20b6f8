#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_probe::dtls::fuzz_server_datagrams(data));
