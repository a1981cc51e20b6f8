#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bleedwatch_starttls::fuzzing::server_replies(data));
