//! The servers and clients run as separate processes by the driver: the
//! raw-socket floor and this workspace's `ttrpc-std` and `ttrpc-mio`.

use std::error::Error;
use std::io::{BufRead, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token};
use ttrpc_std::{CallOptions, Config, Registry};

use crate::alloc;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The benchmark service, the same in every implementation.
pub(crate) const SERVICE: &str = "ttrpc.bench.Bench";
/// Echoes its `BytesValue` request.
const ECHO: &str = "Echo";
/// Answers this process's allocation count (8 bytes, little endian).
const ALLOCS: &str = "Allocs";
/// Connections (and mio tokens) a benchmark server accepts.
const MAX_CONNS: usize = 20_000;

/// A `google.protobuf.BytesValue` holding `n` bytes (field 1).
pub(crate) fn bytes_value(n: usize) -> Vec<u8> {
    let mut out = vec![0x0a];
    let mut len = n;
    while len >= 0x80 {
        out.push(u8::try_from(len & 0x7f).unwrap_or(0) | 0x80);
        len >>= 7;
    }
    out.push(u8::try_from(len).unwrap_or(0));
    out.extend((0..n).map(|i| u8::try_from(i % 251).unwrap_or(0)));
    out
}

/// `(payload bytes, calls in flight)` of a timed case.
fn case_params(case: &str) -> Result<(usize, usize)> {
    match case {
        "rtt16" => Ok((16, 1)),
        "inflight16" => Ok((16, 16)),
        "mib" => Ok((1 << 20, 1)),
        other => Err(format!("unknown case {other:?}").into()),
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register_fn(SERVICE, ECHO, |req| Ok(req.payload.clone()));
    registry.register_fn(SERVICE, ALLOCS, |_| {
        Ok(Bytes::copy_from_slice(&alloc::count().to_le_bytes()))
    });
    registry
}

/// Runs a server until killed.
pub(crate) fn server(imp: &str, socket: &str) -> Result<()> {
    let address = format!("unix://{socket}");
    match imp {
        "raw" => raw_server(socket),
        "std" | "std-inline" => {
            let mut config = ttrpc_std::ServerConfig::default().max_connections(MAX_CONNS);
            if imp == "std-inline" {
                // Handlers on the connection thread: no hand-off per request.
                config = config.max_concurrent_handlers(1);
            }
            let server = ttrpc_std::Server::with_config(registry(), config)?;
            server.bind_and_serve(&address)?;
            Ok(())
        }
        "mio" => {
            let mut poll = Poll::new()?;
            let config = ttrpc_mio::ServerConfig::default().max_connections(MAX_CONNS);
            let mut server = ttrpc_mio::Server::bind(
                &address,
                registry(),
                config,
                poll.registry(),
                0..MAX_CONNS + 2,
            )?;
            server.run(&mut poll)?;
            Ok(())
        }
        other => Err(format!("unknown implementation {other:?}").into()),
    }
}

/// The floor: a thread per connection echoing length-prefixed messages
/// (4-byte little-endian length, then the bytes), one write per answer.
fn raw_server(socket: &str) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    for stream in listener.incoming() {
        let mut stream = stream?;
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            loop {
                let mut header = [0u8; 4];
                if stream.read_exact(&mut header).is_err() {
                    return;
                }
                let len = u32::from_le_bytes(header) as usize;
                buf.resize(4 + len, 0);
                buf[..4].copy_from_slice(&header);
                if stream.read_exact(&mut buf[4..]).is_err() || stream.write_all(&buf).is_err() {
                    return;
                }
            }
        });
    }
    Ok(())
}

/// Runs a timed case and prints `calls elapsed_ns`.
pub(crate) fn client(imp: &str, socket: &str, case: &str, secs: f64) -> Result<()> {
    let (size, inflight) = case_params(case)?;
    // Our clients take the payload as `Bytes` (`call_bytes`): a large one
    // is written from where it is, as the floor writes its buffer.
    let payload = Bytes::from(bytes_value(size));
    let run = Duration::from_secs_f64(secs);
    let warmup = if size > 1024 { 10 } else { 1000 };
    let (calls, elapsed) = match imp {
        "raw" => raw_client(socket, &payload, inflight, warmup, run)?,
        "std" => std_client(socket, &payload, inflight, warmup, run)?,
        "mio" => {
            let mut client = MioClient::connect(socket)?;
            client.run(&payload, inflight, |done, _| done >= warmup)?;
            let start = Instant::now();
            let calls = client.run(&payload, inflight, |_, now| now - start >= run)?;
            (calls, start.elapsed())
        }
        other => return Err(format!("unknown implementation {other:?}").into()),
    };
    println!("{calls} {}", elapsed.as_nanos());
    Ok(())
}

fn raw_client(
    socket: &str,
    payload: &[u8],
    inflight: usize,
    warmup: u64,
    run: Duration,
) -> Result<(u64, Duration)> {
    let mut stream = UnixStream::connect(socket)?;
    let mut message = u32::try_from(payload.len())?.to_le_bytes().to_vec();
    message.extend_from_slice(payload);
    let mut buf = vec![0u8; payload.len()];
    let mut round = |stop: &mut dyn FnMut(u64) -> bool| -> Result<u64> {
        for _ in 0..inflight {
            stream.write_all(&message)?;
        }
        let (mut done, mut out, mut stopping) = (0u64, inflight, false);
        while out > 0 {
            let mut header = [0u8; 4];
            stream.read_exact(&mut header)?;
            stream.read_exact(&mut buf[..u32::from_le_bytes(header) as usize])?;
            done += 1;
            stopping = stopping || stop(done);
            if stopping {
                out -= 1;
            } else {
                stream.write_all(&message)?;
            }
        }
        Ok(done)
    };
    round(&mut |done| done >= warmup)?;
    let start = Instant::now();
    let calls = round(&mut |_| start.elapsed() >= run)?;
    Ok((calls, start.elapsed()))
}

fn std_client(
    socket: &str,
    payload: &Bytes,
    inflight: usize,
    warmup: u64,
    run: Duration,
) -> Result<(u64, Duration)> {
    let client = ttrpc_std::Client::connect(&format!("unix://{socket}"))?;
    let options = CallOptions::default();
    for _ in 0..warmup {
        client.call_bytes(SERVICE, ECHO, payload, &options)?;
    }
    let calls = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..inflight {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match client.call_bytes(SERVICE, ECHO, payload, &options) {
                        Ok(answer) if answer.len() == payload.len() => {
                            calls.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.store(true, Ordering::Relaxed);
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
    if failed.load(Ordering::Relaxed) {
        return Err("a call failed".into());
    }
    Ok((calls.load(Ordering::Relaxed), start.elapsed()))
}

/// A `ttrpc-mio` client on its own `Poll`, driven by this thread.
struct MioClient {
    poll: Poll,
    events: Events,
    client: ttrpc_mio::Client,
}

impl MioClient {
    fn connect(socket: &str) -> Result<Self> {
        let poll = Poll::new()?;
        let client = ttrpc_mio::Client::connect(
            &format!("unix://{socket}"),
            Config::default(),
            poll.registry(),
            Token(0),
        )?;
        Ok(Self {
            poll,
            events: Events::with_capacity(64),
            client,
        })
    }

    /// Keeps `inflight` calls going until `stop(completed, now)`, then
    /// drains; returns the calls completed.
    fn run(
        &mut self,
        payload: &Bytes,
        inflight: usize,
        mut stop: impl FnMut(u64, Instant) -> bool,
    ) -> Result<u64> {
        let options = CallOptions::default();
        let (mut done, mut out, mut stopping) = (0u64, 0usize, false);
        loop {
            while !stopping && out < inflight {
                self.client.call_bytes(SERVICE, ECHO, payload, &options)?;
                out += 1;
            }
            while let Some((_, result)) = self.client.poll_completion() {
                if result?.len() != payload.len() {
                    return Err("short answer".into());
                }
                out -= 1;
                done += 1;
            }
            stopping = stopping || stop(done, Instant::now());
            if !stopping && out < inflight {
                continue;
            }
            if out == 0 {
                return Ok(done);
            }
            self.turn()?;
        }
    }

    /// One call, waited for.
    fn call(&mut self, method: &str, payload: &[u8]) -> Result<Bytes> {
        self.client
            .call(SERVICE, method, payload, &CallOptions::default())?;
        loop {
            if let Some((_, result)) = self.client.poll_completion() {
                return Ok(result?);
            }
            self.turn()?;
        }
    }

    fn turn(&mut self) -> Result<()> {
        let timeout = self
            .client
            .poll_timeout()
            .map(|at| at.saturating_duration_since(Instant::now()));
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
        for event in &self.events {
            self.client.handle_event(event);
        }
        self.client.handle_timeout(Instant::now());
        Ok(())
    }
}

fn decode_count(answer: &[u8]) -> Result<u64> {
    Ok(u64::from_le_bytes(answer.try_into()?))
}

/// Allocations per unary 16-byte call, client and server side (each
/// process counts all its threads); prints `client server`.
pub(crate) fn allocs(imp: &str, socket: &str, calls: u64) -> Result<()> {
    let payload = Bytes::from(bytes_value(16));
    let (client_allocs, server_allocs) = match imp {
        "std" => {
            let client = ttrpc_std::Client::connect(&format!("unix://{socket}"))?;
            let options = CallOptions::default();
            for _ in 0..1000 {
                client.call_raw(SERVICE, ECHO, &payload, &options)?;
            }
            let s0 = decode_count(&client.call_raw(SERVICE, ALLOCS, b"", &options)?)?;
            let c0 = alloc::count();
            for _ in 0..calls {
                client.call_raw(SERVICE, ECHO, &payload, &options)?;
            }
            let c1 = alloc::count();
            let s1 = decode_count(&client.call_raw(SERVICE, ALLOCS, b"", &options)?)?;
            (c1 - c0, s1 - s0)
        }
        "mio" => {
            let mut client = MioClient::connect(socket)?;
            client.run(&payload, 1, |done, _| done >= 1000)?;
            let s0 = decode_count(&client.call(ALLOCS, b"")?)?;
            let c0 = alloc::count();
            client.run(&payload, 1, |done, _| done >= calls)?;
            let c1 = alloc::count();
            let s1 = decode_count(&client.call(ALLOCS, b"")?)?;
            (c1 - c0, s1 - s0)
        }
        other => return Err(format!("no allocation count for {other:?}").into()),
    };
    #[allow(clippy::cast_precision_loss)]
    let per = |n: u64| n as f64 / calls as f64;
    println!("{} {}", per(client_allocs), per(server_allocs));
    Ok(())
}

/// Opens `n` idle connections, prints `ready`, and holds them until stdin
/// closes.
pub(crate) fn hold(socket: &str, n: usize) -> Result<()> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(UnixStream::connect(socket)?);
    }
    println!("ready");
    std::io::stdout().flush()?;
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line)? > 0 {}
    drop(conns);
    Ok(())
}
