//! A ttrpc server and client embedded in the caller's own `mio` loop,
//! beside the caller's own sources: a control pipe (token 0) and a timer
//! the caller keeps itself. No thread is started.
//!
//! ```text
//! cargo run -p ttrpc-mio --example embed
//! ```

use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token};
use ttrpc_mio::{CallOptions, Client, Config, Registry, Responder, Server, ServerConfig};

/// The caller's own control pipe.
const CONTROL: Token = Token(0);
/// The client's connection.
const CLIENT: Token = Token(1);
/// The server's range: waker, listener, and up to 62 connections.
const SERVER_TOKENS: std::ops::Range<usize> = 64..128;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Handlers: one answers at once; one parks its responder, and the
    // caller's timer answers it later, from the loop thread.
    let parked: Arc<Mutex<Vec<Responder>>> = Arc::default();
    let mut handlers = Registry::new();
    handlers.register_fn("demo.Clock", "Echo", |req| Ok(req.payload.clone()));
    let p = Arc::clone(&parked);
    handlers.register("demo.Clock", "NextTick", move |_req, r: Responder| {
        p.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    });

    let mut poll = Poll::new()?;
    let dir = std::env::temp_dir().join(format!("ttrpc-mio-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let address = format!("unix://{}", dir.join("embed.sock").display());
    let mut server = Server::bind(
        &address,
        handlers,
        ServerConfig::default(),
        poll.registry(),
        SERVER_TOKENS,
    )?;
    let mut client = Client::connect(&address, Config::default(), poll.registry(), CLIENT)?;

    // The caller's own sources: a control pipe and a 50 ms tick.
    let (mut control_tx, mut control_rx) = UnixStream::pair()?;
    poll.registry()
        .register(&mut control_rx, CONTROL, Interest::READABLE)?;
    let tick = Duration::from_millis(50);
    let mut next_tick = Instant::now() + tick;
    let mut ticks = 0u32;

    // Ten calls in flight at once: echoes and waits for the next tick.
    let options = CallOptions::with_timeout(Duration::from_secs(5));
    let names = Rc::new(RefCell::new(std::collections::BTreeMap::new()));
    for i in 0..10u8 {
        let (method, payload) = if i % 2 == 0 {
            ("Echo", vec![b'a' + i])
        } else {
            ("NextTick", Vec::new())
        };
        let id = client.call("demo.Clock", method, &payload, &options)?;
        names.borrow_mut().insert(id, method);
    }

    let mut events = Events::with_capacity(128);
    let mut done = 0;
    let mut stopping = false;
    while !server.is_finished() {
        let timeout = [
            server.poll_timeout(),
            client.poll_timeout(),
            Some(next_tick),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout)?;
        for event in &events {
            if event.token() == CONTROL {
                let mut buf = [0u8; 16];
                while let Ok(n) = control_rx.read(&mut buf) {
                    if n == 0 || buf[..n].contains(&b'q') {
                        println!("control: quit -> graceful shutdown");
                        server.shutdown(Duration::from_secs(1));
                        stopping = true;
                        break;
                    }
                }
            } else if !server.handle_event(event) && !client.handle_event(event) {
                // Sporadic events for tokens nobody owns are harmless.
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            ticks += 1;
            next_tick = now + tick;
            // Answer every parked call from the loop thread.
            for r in parked.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
                r.ok(format!("tick {ticks}").into_bytes());
            }
        }
        server.handle_timeout(now);
        client.handle_timeout(now);
        while let Some((id, result)) = client.poll_completion() {
            done += 1;
            let method = names.borrow().get(&id).copied().unwrap_or("?");
            match result {
                Ok(bytes) => println!("call {id} {method}: {:?}", String::from_utf8_lossy(&bytes)),
                Err(e) => println!("call {id} {method}: error {e}"),
            }
        }
        if done == 10 && !stopping {
            control_tx.write_all(b"q")?;
            stopping = true;
        }
    }
    println!(
        "server finished after {ticks} ticks; stats {:?}",
        server.stats()
    );
    let _ = std::fs::remove_dir(&dir);
    Ok(())
}
