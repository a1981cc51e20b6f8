#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_pcap::fuzz_capture(data));
