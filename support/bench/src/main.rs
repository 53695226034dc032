//! `ttrpc-bench`: side-by-side benchmarks of this workspace's transports
//! (`ttrpc-std`, `ttrpc-mio`) against Go ttrpc 1.1.1, ttrpc-rust and a
//! raw unix-socket ping-pong floor. Benchmarks, not tests: nothing here
//! asserts a timing.
//!
//! Run everything with `support/bench/run.sh` (builds, runs, prints one
//! markdown table). The binary's subcommands are the pieces that script
//! uses:
//!
//! ```text
//! ttrpc-bench server raw|std|std-inline|mio SOCKET     # std-inline: max_concurrent_handlers = 1
//! ttrpc-bench client raw|std|mio SOCKET CASE SECONDS   # prints "calls elapsed_ns"
//! ttrpc-bench client std|mio SOCKET allocs CALLS       # prints "client_per_call server_per_call"
//! ttrpc-bench hold SOCKET N                             # N idle connections until stdin closes
//! ttrpc-bench drive [options]                           # the interleaved runner
//! ```
//!
//! CASE is `rtt16` (16-byte payload, one call in flight), `inflight16`
//! (16-byte payload, 16 calls in flight on one connection) or `mib`
//! (1 MiB each way, one in flight). Every implementation serves
//! `ttrpc.bench.Bench/Echo` with a `google.protobuf.BytesValue` payload.

mod alloc;
mod drive;
mod peers;

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn usage() -> ExitCode {
    eprintln!("usage: ttrpc-bench server raw|std|std-inline|mio SOCKET");
    eprintln!("       ttrpc-bench client raw|std|mio SOCKET rtt16|inflight16|mib SECONDS");
    eprintln!("       ttrpc-bench client std|mio SOCKET allocs CALLS");
    eprintln!("       ttrpc-bench hold SOCKET N");
    eprintln!("       ttrpc-bench drive [--reps N] [--secs S] [--conns N] [--tr-conns N]");
    eprintln!("                         --go PATH --ttrpc-rust PATH --sleeper PATH");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match a.as_slice() {
        ["server", imp, socket] => peers::server(imp, socket),
        ["client", imp, socket, "allocs", calls] => match calls.parse() {
            Ok(n) => peers::allocs(imp, socket, n),
            Err(_) => return usage(),
        },
        ["client", imp, socket, case, secs] => match secs.parse() {
            Ok(secs) => peers::client(imp, socket, case, secs),
            Err(_) => return usage(),
        },
        ["hold", socket, n] => match n.parse() {
            Ok(n) => peers::hold(socket, n),
            Err(_) => return usage(),
        },
        ["drive", rest @ ..] => match drive::Options::parse(rest) {
            Some(options) => drive::run(&options),
            None => return usage(),
        },
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttrpc-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
