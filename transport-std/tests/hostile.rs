//! The hostile-peer suite (support/testkit/src/hostile.rs) against the std
//! server. One test in this binary, so its fd counts see no other test.

mod common;

use std::time::Duration;

use common::TestServer;
use ttrpc_std::{Config, Registry, ServerConfig};
use ttrpc_testkit::hostile::{Target, run_all};
use ttrpc_testkit::interop::register_interop;

#[test]
fn hostile_peers_never_hurt_other_clients_or_leak() {
    let partial = Duration::from_millis(800);
    let config = Config::default()
        .with_max_in_flight(16)
        .with_max_tx_bytes(256 * 1024)
        .with_partial_frame_timeout(Some(partial));
    // The bound per connection, for a driver that reads 64 KiB at a time.
    let bound = config.memory_bound(64 * 1024) as u64;
    let mut registry = Registry::new();
    register_interop(&mut registry);
    let server = TestServer::start(registry, ServerConfig::default().connection(config));
    let stats_server = server.server.clone();
    let buffered = move || stats_server.stats().buffered_bytes;
    run_all(
        &Target {
            socket: &server.socket,
            buffered: &buffered,
            bound_per_connection: bound,
            partial_frame_timeout: Some(partial),
        },
        16,
    );
    assert_eq!(server.server.stats().refused, 0);
}
