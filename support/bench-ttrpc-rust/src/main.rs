//! ttrpc-rust (crates.io `ttrpc` 0.10) benchmark peer.
//!
//! ```text
//! bench-ttrpc-rust server sync|async SOCKET
//! bench-ttrpc-rust client sync|async SOCKET CASE SECONDS
//! ```
//!
//! The service is `ttrpc.bench.Bench`, method `Echo`: the request payload
//! (a `google.protobuf.BytesValue`, encoded by hand: no codegen, no
//! `protoc`) is echoed back as the response payload. The client prints
//! `calls elapsed_ns` for CASE `rtt16`, `inflight16` or `mib`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ttrpc::proto::{Code, Request, Response, Status};

const SERVICE: &str = "ttrpc.bench.Bench";
const METHOD: &str = "Echo";

/// A `BytesValue` holding `n` bytes: field 1, length-delimited.
fn bytes_value(n: usize) -> Vec<u8> {
    let mut out = vec![0x0a];
    let mut len = n;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend((0..n).map(|i| (i % 251) as u8));
    out
}

fn ok_response(payload: Vec<u8>) -> Response {
    let mut status = Status::new();
    status.set_code(Code::OK);
    let mut res = Response::new();
    res.set_status(status);
    res.payload = payload;
    res
}

fn request(payload: &[u8]) -> Request {
    let mut req = Request::new();
    req.set_service(SERVICE.to_string());
    req.set_method(METHOD.to_string());
    req.payload = payload.to_vec();
    req
}

struct SyncEcho;
impl ttrpc::MethodHandler for SyncEcho {
    fn handler(&self, ctx: ttrpc::TtrpcContext, req: Request) -> ttrpc::Result<()> {
        ctx.respond(ctx.mh.stream_id, ok_response(req.payload))
    }
}

struct AsyncEcho;
#[async_trait::async_trait]
impl ttrpc::r#async::MethodHandler for AsyncEcho {
    async fn handler(
        &self,
        _ctx: ttrpc::r#async::TtrpcContext,
        req: Request,
    ) -> ttrpc::Result<Response> {
        Ok(ok_response(req.payload))
    }
}

fn case_params(case: &str) -> (usize, usize) {
    match case {
        "rtt16" => (16, 1),
        "inflight16" => (16, 16),
        "mib" => (1 << 20, 1),
        other => panic!("unknown case {other}"),
    }
}

fn sync_server(socket: &str) {
    let mut methods: HashMap<String, Box<dyn ttrpc::MethodHandler + Send + Sync>> = HashMap::new();
    methods.insert(format!("/{SERVICE}/{METHOD}"), Box::new(SyncEcho));
    let mut server = ttrpc::Server::new()
        .bind(&format!("unix://{socket}"))
        .expect("bind")
        .register_service(methods);
    server.start().expect("start");
    loop {
        std::thread::park();
    }
}

fn async_server(socket: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut methods: HashMap<String, Box<dyn ttrpc::r#async::MethodHandler + Send + Sync>> =
            HashMap::new();
        methods.insert(METHOD.to_string(), Box::new(AsyncEcho));
        let service = ttrpc::r#async::Service {
            methods,
            streams: HashMap::new(),
        };
        let mut services = HashMap::new();
        services.insert(SERVICE.to_string(), service);
        let mut server = ttrpc::r#async::Server::new()
            .bind(&format!("unix://{socket}"))
            .expect("bind")
            .register_service(services);
        server.start().await.expect("start");
        std::future::pending::<()>().await;
    });
}

fn sync_client(socket: &str, case: &str, secs: f64) -> (u64, Duration) {
    let (size, inflight) = case_params(case);
    let client = ttrpc::Client::connect(&format!("unix://{socket}")).expect("connect");
    let payload = bytes_value(size);
    let run = Duration::from_secs_f64(secs);
    // Warm up.
    for _ in 0..10 {
        client.request(request(&payload)).expect("call");
    }
    let calls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..inflight {
            let client = client.clone();
            let (calls, stop, payload) = (calls.clone(), stop.clone(), &payload);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let res = client.request(request(payload)).expect("call");
                    assert_eq!(res.payload.len(), payload.len());
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(run);
        stop.store(true, Ordering::Relaxed);
    });
    (calls.load(Ordering::Relaxed), start.elapsed())
}

fn async_client(socket: &str, case: &str, secs: f64) -> (u64, Duration) {
    let (size, inflight) = case_params(case);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let client = ttrpc::r#async::Client::connect(&format!("unix://{socket}"))
            .await
            .expect("connect");
        let payload = Arc::new(bytes_value(size));
        for _ in 0..10 {
            client.request(request(&payload)).await.expect("call");
        }
        let calls = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..inflight {
            let (client, calls, stop, payload) =
                (client.clone(), calls.clone(), stop.clone(), payload.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let res = client.request(request(&payload)).await.expect("call");
                    assert_eq!(res.payload.len(), payload.len());
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        (calls.load(Ordering::Relaxed), start.elapsed())
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["server", "sync", socket] => sync_server(socket),
        ["server", "async", socket] => async_server(socket),
        ["client", mode, socket, case, secs] => {
            let secs: f64 = secs.parse().expect("seconds");
            let (calls, elapsed) = match *mode {
                "sync" => sync_client(socket, case, secs),
                "async" => async_client(socket, case, secs),
                other => panic!("unknown mode {other}"),
            };
            println!("{calls} {}", elapsed.as_nanos());
        }
        _ => {
            eprintln!("usage: bench-ttrpc-rust server sync|async SOCKET");
            eprintln!("       bench-ttrpc-rust client sync|async SOCKET CASE SECONDS");
            std::process::exit(2);
        }
    }
}
