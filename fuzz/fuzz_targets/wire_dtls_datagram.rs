#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_wire::dtls::fuzz_datagram(data));
