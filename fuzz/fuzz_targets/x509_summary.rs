#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_x509::fuzz_summarize(data));
