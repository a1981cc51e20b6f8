#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_targets::fuzzing::lists(data));
