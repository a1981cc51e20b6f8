#![no_main]
use std::sync::{Arc, OnceLock};

static IDENTITY: OnceLock<Arc<bleedwatch_lab::LabIdentity>> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let identity = IDENTITY.get_or_init(|| Arc::new(bleedwatch_lab::LabIdentity::rsa_lab(&["fuzz.test"]).expect("lab identity")));
    bleedwatch_lab::dtls::fuzz_client_datagrams(data, identity.clone());
});
