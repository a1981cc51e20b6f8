#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_audit::fuzz_audit(data));
