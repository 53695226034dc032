//! A benchmark, not a test: prints figures, asserts nothing.
//!
//! 1. Idle memory per connection: the server's resident memory before and
//!    after 10,000 connections (each made one Echo call, then idles),
//!    opened by a child process (this binary re-executed as `client`), for
//!    the mio server and — with fewer connections, since it runs a thread
//!    per connection — the std server.
//! 2. Calls per second with 16 clients (ttrpc-std clients, one connection
//!    and one thread each, 16-byte Echo) against each server.
//!
//! ```text
//! cargo run --release -p ttrpc-mio --example bench_idle
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use mio::Poll;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use ttrpc_mio::{CallOptions, Registry, Server, ServerConfig};
use ttrpc_testkit::interop::{read_frame, write_request};
use ttrpc_testkit::{SERVICE, TempDir};

const MIO_CONNECTIONS: usize = 10_000;
const STD_CONNECTIONS: usize = 2_000;
const CLIENTS: usize = 16;
const RUN: Duration = Duration::from_secs(3);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn raise_nofile() {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register_fn(SERVICE, "Echo", |req| Ok(req.payload.clone()));
    r
}

/// The child: opens `n` connections, one Echo on each, prints READY, and
/// holds them until its stdin closes.
fn client_main(socket: &str, n: usize) {
    raise_nofile();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        write_request(&mut s, 1, "Echo", b"hello");
        conns.push(s);
    }
    for s in &mut conns {
        read_frame(s).expect("answer");
    }
    println!("READY");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Runs the child against `socket`; returns the server's RSS growth in KiB
/// with the connections open and idle.
fn idle_rss(socket: &std::path::Path, n: usize, settle: impl Fn()) -> u64 {
    let before = rss_kib();
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .arg("client")
        .arg(socket)
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn client process");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("READY");
    assert_eq!(line.trim(), "READY", "client process failed");
    settle();
    thread::sleep(Duration::from_millis(500));
    let after = rss_kib();
    drop(child.stdin.take());
    let _ = child.wait();
    after.saturating_sub(before)
}

/// 16 ttrpc-std clients calling Echo for [`RUN`]; calls per second.
fn calls_per_second(socket: &std::path::Path) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let address = format!("unix://{}", socket.display());
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, calls, address) = (stop.clone(), calls.clone(), address.clone());
            thread::spawn(move || {
                let c = ttrpc_std::Client::connect(&address).expect("connect");
                let opts = CallOptions::default();
                while !stop.load(Ordering::Relaxed) {
                    c.call_raw(SERVICE, "Echo", &[7; 16], &opts).expect("call");
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300)); // warm up
    let start_calls = calls.load(Ordering::Relaxed);
    let t0 = Instant::now();
    thread::sleep(RUN);
    let n = calls.load(Ordering::Relaxed) - start_calls;
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    n as f64 / secs
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        client_main(&args[2], args[3].parse().expect("count"));
        return;
    }
    raise_nofile();
    let dir = TempDir::new("ttrpc-mio-bench").expect("dir");
    let nofile = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |l| l.0);
    println!(
        "RLIMIT_NOFILE {nofile}; {} cores",
        thread::available_parallelism().map_or(0, |n| n.get())
    );

    // ---- mio server on a loop thread
    let mio_sock = dir.path().join("mio.sock");
    let mut poll = Poll::new().expect("poll");
    let mut server = Server::bind(
        &format!("unix://{}", mio_sock.display()),
        registry(),
        ServerConfig::default().max_connections(MIO_CONNECTIONS + 100),
        poll.registry(),
        10..MIO_CONNECTIONS + 200,
    )
    .expect("bind");
    let handle = server.handle();
    let loop_thread = thread::spawn(move || server.run(&mut poll));
    let mio_n = MIO_CONNECTIONS.min(usize::try_from(nofile).unwrap_or(0).saturating_sub(200));
    let grown = idle_rss(&mio_sock, mio_n, || {
        while handle.active() < mio_n {
            thread::sleep(Duration::from_millis(10));
        }
    });
    println!(
        "mio server: {mio_n} idle connections: +{grown} KiB RSS = {:.0} bytes/connection (buffered {} bytes)",
        grown as f64 * 1024.0 / mio_n as f64,
        handle.buffered_bytes()
    );
    while handle.active() > 0 {
        thread::sleep(Duration::from_millis(10));
    }
    let mio_rate = calls_per_second(&mio_sock);
    handle.shutdown(Duration::from_secs(5));
    loop_thread.join().expect("loop").expect("run");

    // ---- std server
    let std_sock = dir.path().join("std.sock");
    let std_config = ttrpc_std::ServerConfig::default().max_connections(STD_CONNECTIONS + 10);
    let std_server = ttrpc_std::Server::with_config(registry(), std_config).expect("std server");
    let listener = ttrpc_std::Address::Path(std_sock.clone())
        .bind()
        .expect("bind");
    let s = std_server.clone();
    let serving = thread::spawn(move || s.serve(listener));
    let grown = idle_rss(&std_sock, STD_CONNECTIONS, || {
        while std_server.stats().active < STD_CONNECTIONS as u64 {
            thread::sleep(Duration::from_millis(10));
        }
    });
    println!(
        "std server: {STD_CONNECTIONS} idle connections: +{grown} KiB RSS = {:.0} bytes/connection (one thread each)",
        grown as f64 * 1024.0 / STD_CONNECTIONS as f64
    );
    while std_server.stats().active > 0 {
        thread::sleep(Duration::from_millis(10));
    }
    let std_rate = calls_per_second(&std_sock);
    std_server.shutdown(Duration::from_secs(5));
    serving.join().expect("serve").expect("serve");

    println!("{CLIENTS} clients, 16-byte Echo, {RUN:?}:");
    println!("  mio server: {mio_rate:>9.0} calls/s (one loop thread, inline handlers)");
    println!("  std server: {std_rate:>9.0} calls/s (thread per connection)");
    let _ = std::io::stdout().flush();
}
