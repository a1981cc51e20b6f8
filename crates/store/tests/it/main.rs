//! The inventory's integration tests, in one binary. Every test of `suite.rs` runs twice: on
//! SQLite and on a real PostgreSQL started on loopback (`backend.rs`). Histories come from real
//! scans of lab servers that change between scans (`site.rs`); revocation from a CA run with the
//! openssl CLI (`pki.rs`); attacks from the shared real captures, through the real pcap engine.
#![allow(clippy::unwrap_used, clippy::panic)]

mod backend;
mod fuzz_corpus;
mod pki;
mod site;
mod suite;

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::suite::$test(crate::backend::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::suite::$test(crate::backend::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_backends!(
    response_history_reaches_every_state,
    shared_key_is_compromised_everywhere,
    recording_is_idempotent,
    resumed_runs_see_pending_targets,
    revocation_checks_complete_the_response,
    assets_link_endpoints_to_owners,
    disk_audits_meet_their_endpoints,
    imported_targets_are_rescanned,
    rescan_proposes_what_needs_testing,
    endpoint_views_carry_the_contract,
    schema_and_bad_input,
    client_tests_are_kept_per_client,
    capture_attacks_are_endpoint_evidence,
    honeypot_attempts_list_attackers,
    notices_are_claimed_once,
);
