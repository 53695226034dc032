//! Test support: the mio server run on a thread with `run()`, a handler
//! pool for it, and a blocking adapter over the mio client (testkit's
//! `UnaryCall`), each driven by its own loop thread.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token, Waker};
use ttrpc_mio::{
    CallOptions, Client, Config, Error, Executor, Job, Registry, Server, ServerConfig,
    ServerHandle, StreamId,
};
use ttrpc_testkit::interop::{CallFailure, UnaryCall};
use ttrpc_testkit::{SERVICE, TempDir};

/// The interop service's methods that block their thread.
fn blocks(job: &Job) -> bool {
    matches!(job.request().method.as_str(), "Sleep" | "Block")
}

/// A handler pool of `n` threads (the test's threads, not the crate's) for
/// the interop methods that block (`Sleep`, `Block`); the others run inline
/// on the loop.
pub(crate) fn pool(n: usize) -> Executor {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..n {
        let rx = Arc::clone(&rx);
        thread::spawn(move || {
            loop {
                let job = rx.lock().unwrap().recv();
                match job {
                    Ok(job) => job.run(),
                    Err(_) => return,
                }
            }
        });
    }
    let tx = Mutex::new(tx);
    Arc::new(move |job: Job| {
        if blocks(&job) {
            let _ = tx.lock().unwrap().send(job);
        } else {
            job.run();
        }
    })
}

/// The mio server serving `registry` on `dir/mio.sock`, on a loop thread.
pub(crate) struct TestServer {
    pub(crate) handle: ServerHandle,
    pub(crate) socket: PathBuf,
    thread: Option<thread::JoinHandle<Result<(), Error>>>,
    _dir: Option<TempDir>,
}

impl TestServer {
    pub(crate) fn start(registry: Registry, config: ServerConfig) -> Self {
        let dir = TempDir::new("ttrpc-mio-test").expect("temp dir");
        let socket = dir.path().join("mio.sock");
        let mut s = Self::start_at(&format!("unix://{}", socket.display()), registry, config);
        s._dir = Some(dir);
        s
    }

    pub(crate) fn start_at(address: &str, registry: Registry, config: ServerConfig) -> Self {
        let mut poll = Poll::new().expect("poll");
        let mut server =
            Server::bind(address, registry, config, poll.registry(), 10..100_000).expect("bind");
        let handle = server.handle();
        let thread = thread::spawn(move || server.run(&mut poll));
        let socket = PathBuf::from(address.strip_prefix("unix://").unwrap_or(address));
        Self {
            handle,
            socket,
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Graceful shutdown; returns how long the loop took to finish.
    pub(crate) fn shutdown(mut self, grace: Duration) -> Duration {
        let t0 = Instant::now();
        self.handle.shutdown(grace);
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("server thread")
            .expect("run");
        t0.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.shutdown_now();
            t.join().expect("server thread").expect("run");
        }
    }
}

type Reply = mpsc::Sender<Result<Bytes, Error>>;

enum Cmd {
    Call {
        method: String,
        payload: Vec<u8>,
        opts: CallOptions,
        reply: Reply,
    },
    Stop,
}

const CLIENT: Token = Token(1);
const WAKE: Token = Token(0);

/// A blocking client for the shared cases: a loop thread owns the mio
/// `Poll` and `Client`; callers on any thread send commands through a
/// queue plus a `Waker` and wait for their completion.
pub(crate) struct LoopClient {
    cmds: Arc<Mutex<Vec<Cmd>>>,
    waker: Arc<Waker>,
    thread: Option<thread::JoinHandle<ttrpc_mio::core::Stats>>,
}

impl LoopClient {
    pub(crate) fn connect(address: &str) -> Self {
        let mut poll = Poll::new().expect("poll");
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).expect("waker"));
        let mut client =
            Client::connect(address, Config::default(), poll.registry(), CLIENT).expect("connect");
        let cmds: Arc<Mutex<Vec<Cmd>>> = Arc::default();
        let queue = Arc::clone(&cmds);
        let thread = thread::spawn(move || {
            let mut events = Events::with_capacity(64);
            let mut waiting: HashMap<StreamId, Reply> = HashMap::new();
            loop {
                let timeout = client
                    .poll_timeout()
                    .map(|at| at.saturating_duration_since(Instant::now()));
                poll.poll(&mut events, timeout).expect("poll");
                for event in &events {
                    client.handle_event(event);
                }
                for cmd in std::mem::take(&mut *queue.lock().unwrap()) {
                    match cmd {
                        Cmd::Call {
                            method,
                            payload,
                            opts,
                            reply,
                        } => match client.call(SERVICE, &method, &payload, &opts) {
                            Ok(id) => {
                                waiting.insert(id, reply);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        },
                        Cmd::Stop => return client.stats(),
                    }
                }
                client.handle_timeout(Instant::now());
                while let Some((id, result)) = client.poll_completion() {
                    if let Some(reply) = waiting.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
            }
        });
        Self {
            cmds,
            waker,
            thread: Some(thread),
        }
    }

    fn send(&self, cmd: Cmd) {
        self.cmds.lock().unwrap().push(cmd);
        self.waker.wake().expect("wake");
    }

    pub(crate) fn call_raw(
        &self,
        method: &str,
        payload: &[u8],
        opts: &CallOptions,
    ) -> Result<Bytes, Error> {
        let (tx, rx) = mpsc::channel();
        self.send(Cmd::Call {
            method: method.into(),
            payload: payload.to_vec(),
            opts: opts.clone(),
            reply: tx,
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the loop answered within 60 s")
    }

    /// Stops the loop and returns the client's counters.
    pub(crate) fn stop(mut self) -> ttrpc_mio::core::Stats {
        self.send(Cmd::Stop);
        self.thread.take().unwrap().join().expect("client loop")
    }
}

impl Drop for LoopClient {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.send(Cmd::Stop);
            let _ = t.join();
        }
    }
}

impl UnaryCall for LoopClient {
    fn call(&self, method: &str, payload: &[u8], opts: &CallOptions) -> Result<Bytes, CallFailure> {
        self.call_raw(method, payload, opts).map_err(|e| match e {
            Error::Status(s) => CallFailure::Status {
                code: s.code,
                message: s.message,
            },
            Error::DeadlineExceeded => CallFailure::DeadlineExceeded,
            Error::TooLarge { .. } => CallFailure::TooLarge,
            other => CallFailure::Other(other.to_string()),
        })
    }
}

/// The interop registry (testkit's service).
pub(crate) fn interop_registry() -> Registry {
    let mut registry = Registry::new();
    ttrpc_testkit::interop::register_interop(&mut registry);
    registry
}
