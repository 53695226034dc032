//! `ttrpc-bench-server std|mio SOCKET`: the benchmark's Echo server and
//! nothing else (no runner, no clients, no allocation counter), for the
//! idle-RSS row of a server binary as one would ship it: `run.sh` builds it
//! static with the workspace's release profile (opt-level "z", stripped).

use std::process::ExitCode;

use mio::Poll;
use ttrpc_std::Registry;

fn serve(imp: &str, socket: &str) -> Result<(), Box<dyn std::error::Error>> {
    let address = format!("unix://{socket}");
    let mut registry = Registry::new();
    registry.register_fn("ttrpc.bench.Bench", "Echo", |req| Ok(req.payload.clone()));
    match imp {
        "std" => ttrpc_std::Server::new(registry)?.bind_and_serve(&address)?,
        "mio" => {
            let mut poll = Poll::new()?;
            let mut server = ttrpc_mio::Server::bind(
                &address,
                registry,
                ttrpc_mio::ServerConfig::default(),
                poll.registry(),
                0..1026,
            )?;
            server.run(&mut poll)?;
        }
        other => return Err(format!("unknown implementation {other:?}").into()),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [imp, socket] = args.as_slice() else {
        eprintln!("usage: ttrpc-bench-server std|mio SOCKET");
        return ExitCode::from(2);
    };
    match serve(imp, socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ttrpc-bench-server: {e}");
            ExitCode::FAILURE
        }
    }
}
