//! Descriptor and thread hygiene. Its own test binary, so that no other
//! test opens descriptors while these count them.

mod common;

use std::time::Duration;

use common::{TestServer, echo_registry, wait_until};
use ttrpc_std::{CallOptions, ServerConfig};
use ttrpc_testkit::fd_count;

#[test]
fn a_hundred_connections_leave_no_descriptor_behind() {
    let server = TestServer::start(echo_registry(), ServerConfig::default());
    // Warm up anything opened lazily.
    drop(server.client());
    wait_until(Duration::from_secs(10), "warm-up connection to end", || {
        server.server.stats().active == 0
    });
    let before = fd_count();
    for i in 0..100u32 {
        let client = server.client();
        let got = client
            .call_raw(
                "test.Echo",
                "Echo",
                &i.to_be_bytes(),
                &CallOptions::default(),
            )
            .unwrap();
        assert_eq!(&got[..], i.to_be_bytes());
    }
    wait_until(Duration::from_secs(20), "every connection to end", || {
        server.server.stats().active == 0
    });
    // Threads close their descriptors just before leaving the map.
    wait_until(Duration::from_secs(10), "descriptors to return", || {
        fd_count() <= before
    });
    assert_eq!(fd_count(), before);
    assert_eq!(server.server.stats().accepted, 101);
}
