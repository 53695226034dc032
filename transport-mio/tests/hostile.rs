//! The hostile-peer suite (support/testkit/src/hostile.rs) against the mio
//! server: a peer stalled mid-frame, one that never reads, garbage, 1,000
//! connections opened and closed — while a canary keeps getting answers,
//! with the fd count and the cores' buffered bytes checked after each. One
//! test in this binary, so its fd counts see no other test.

mod common;

use std::time::Duration;

use common::{TestServer, interop_registry, pool};
use ttrpc_mio::{Config, READ_CHUNK, ServerConfig};
use ttrpc_testkit::hostile::{Target, run_all};

#[test]
fn hostile_peers_never_hurt_other_clients_or_leak() {
    let partial = Duration::from_millis(800);
    let config = Config::default()
        .with_max_in_flight(16)
        .with_max_tx_bytes(256 * 1024)
        .with_partial_frame_timeout(Some(partial));
    let bound = config.memory_bound(READ_CHUNK) as u64;
    let server = TestServer::start(
        interop_registry(),
        ServerConfig::default()
            .connection(config)
            .max_connections(2000)
            .executor(pool(64)),
    );
    let handle = server.handle.clone();
    let buffered = move || handle.buffered_bytes() as u64;
    run_all(
        &Target {
            socket: &server.socket,
            buffered: &buffered,
            bound_per_connection: bound,
            partial_frame_timeout: Some(partial),
        },
        16,
    );
}
