//! A ttrpc server with one service, `demo.Greeter`:
//!
//!     cargo run -p ttrpc-std --example server -- unix:///tmp/greeter.sock
//!
//! `Hello` answers `hello, <payload>`; `Sleep` waits the number of
//! milliseconds in its payload (text) and shows the caller's deadline.
//! On a terminal, press Enter for a graceful shutdown; otherwise (e.g. run
//! in the background) it serves until killed.

use std::io::{BufRead, IsTerminal};
use std::time::{Duration, Instant};

use ttrpc_std::{Address, Code, Registry, Server, ServerConfig, Status};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "unix:///tmp/greeter.sock".into());

    let mut registry = Registry::new();
    registry.register_fn("demo.Greeter", "Hello", |req| {
        let name = String::from_utf8_lossy(&req.payload);
        let who = req.metadata.get("user").unwrap_or("anonymous");
        Ok(format!("hello, {name} (from {who})").into())
    });
    registry.register_fn("demo.Greeter", "Sleep", |req| {
        let ms: u64 = std::str::from_utf8(&req.payload)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| Status::new(Code::InvalidArgument, "payload: milliseconds"))?;
        let left = req
            .deadline
            .map(|d| format!("{:?}", d.saturating_duration_since(Instant::now())));
        std::thread::sleep(Duration::from_millis(ms));
        Ok(format!("slept {ms} ms; deadline left at start: {left:?}").into())
    });

    let server = Server::with_config(registry, ServerConfig::default())?;
    let listener = Address::parse(&address)?.bind()?;
    let interactive = std::io::stdin().is_terminal();
    let hint = if interactive {
        "press Enter to stop"
    } else {
        "kill to stop"
    };
    eprintln!("serving demo.Greeter on {address}; {hint}");
    let serving = std::thread::spawn({
        let server = server.clone();
        move || server.serve(listener)
    });

    if !interactive {
        return Ok(serving.join().expect("serve thread")?);
    }
    let _ = std::io::stdin().lock().lines().next();
    let clean = server.shutdown(Duration::from_secs(5));
    serving.join().expect("serve thread")?;
    eprintln!("stopped ({})", if clean { "graceful" } else { "forced" });
    Ok(())
}
