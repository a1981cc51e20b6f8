#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_store::fuzz_recipients_csv(data));
