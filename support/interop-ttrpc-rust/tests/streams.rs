//! Stream interop with ttrpc-rust's async implementation (crates.io
//! `ttrpc` 0.10), both directions, each stream kind (client-streaming
//! `Sum`, server-streaming `Count`, bidirectional `Chat`) plus a unary
//! `Echo` on the same connection:
//!
//! - ttrpc-std's generated stubs and ttrpc-mio's client against a
//!   ttrpc-rust async server;
//! - a ttrpc-rust async client against ttrpc-std's server (the generated
//!   trait, testkit's reference implementation) and ttrpc-mio's server
//!   (stream sessions).
//!
//! Everything runs in this process over unix sockets; ttrpc-rust runs on
//! a tokio runtime of its own.
//!
//! Found on the way: ttrpc-rust 0.10's async *server* handles every
//! incoming frame in a task of its own and releases its reader before a
//! Data frame reaches the stream, so a client's stream messages sent back
//! to back can overtake each other, and a half-close can overtake the last
//! messages, which are then answered "Stream is no longer active" (seen
//! here: `Sum` short of its total, `Chat` answers out of order). Its
//! client had the same race, fixed in 0.10.0 (containerd/ttrpc-rust#311,
//! #312); the server was not. So the clients below talk to a ttrpc-rust
//! server in lockstep (a round trip between messages); towards our
//! servers, ttrpc-rust's client pipelines freely.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ttrpc_interop_rust::streams as rmsg;
use ttrpc_interop_rust::streams_ttrpc as rsvc;
use ttrpc_testkit::TempDir;
use ttrpc_testkit::streams::{self as ours, reversed};

/// Messages per stream where the sender may pipeline.
const COUNT: u64 = 300;
/// Messages per stream sent in lockstep to a ttrpc-rust server.
const PACED: u64 = 40;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn socket(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let path = dir.path().join(name);
    let address = format!("unix://{}", path.display());
    (path, address)
}

// ------------------------------------------------------------ ttrpc-rust server

/// ttrpc-rust's side of the reference behaviour (testkit's `Reference`).
struct RustStreams;

#[async_trait::async_trait]
impl rsvc::Streams for RustStreams {
    async fn sum(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        mut stream: ttrpc::r#async::ServerStreamReceiver<rmsg::Number>,
    ) -> ttrpc::Result<rmsg::Number> {
        let mut sum = 0u64;
        while let Some(n) = stream.recv().await? {
            sum = sum.wrapping_add(n.value);
        }
        Ok(rmsg::Number {
            value: sum,
            ..Default::default()
        })
    }

    async fn count(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: rmsg::Number,
        stream: ttrpc::r#async::ServerStreamSender<rmsg::Number>,
    ) -> ttrpc::Result<()> {
        for value in 0..req.value {
            stream
                .send(&rmsg::Number {
                    value,
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    async fn chat(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        mut stream: ttrpc::r#async::ServerStream<rmsg::Text, rmsg::Text>,
    ) -> ttrpc::Result<()> {
        while let Some(t) = stream.recv().await? {
            stream
                .send(&rmsg::Text {
                    text: reversed(&t.text),
                    ..Default::default()
                })
                .await?;
        }
        Ok(())
    }

    async fn echo(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: rmsg::Text,
    ) -> ttrpc::Result<rmsg::Text> {
        Ok(req)
    }
}

/// A ttrpc-rust async server on `address`, until dropped.
struct RustServer {
    rt: tokio::runtime::Runtime,
    server: Option<ttrpc::r#async::Server>,
}

impl RustServer {
    fn start(address: &str, path: &Path) -> Self {
        let rt = runtime();
        // Binding registers the listener with the runtime's reactor.
        let _in_runtime = rt.enter();
        let service: Arc<dyn rsvc::Streams + Send + Sync> = Arc::new(RustStreams);
        let mut server = ttrpc::r#async::Server::new()
            .bind(address)
            .expect("ttrpc-rust bind")
            .register_service(rsvc::create_streams(service));
        rt.block_on(server.start()).expect("ttrpc-rust start");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !path.exists() {
            assert!(Instant::now() < deadline, "ttrpc-rust never listened");
            thread::sleep(Duration::from_millis(5));
        }
        Self {
            rt,
            server: Some(server),
        }
    }
}

impl Drop for RustServer {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = self.rt.block_on(server.shutdown());
        }
    }
}

fn std_opts() -> ttrpc_std::CallOptions {
    ttrpc_std::CallOptions::with_timeout(Duration::from_secs(10))
}

#[test]
fn ttrpc_std_stubs_against_ttrpc_rust_server() {
    let dir = TempDir::new("interop-rust-srv").unwrap();
    let (path, address) = socket(&dir, "rust.sock");
    let _server = RustServer::start(&address, &path);
    let client = ttrpc_std::Client::connect(&address).expect("connect");
    let stub = ours::StreamsClient::new(&client);

    // Client-streaming, with ttrpc-rust answering by a Response. A unary
    // round trip between messages keeps ttrpc-rust's server from
    // reordering them (see the file docs).
    let sum = stub.sum(&std_opts()).unwrap();
    for value in 1..=PACED {
        sum.send(&ours::Number { value }).unwrap();
        stub.echo(&ours::Text::default(), &std_opts()).unwrap();
    }
    let total = sum.close_and_recv().unwrap();
    assert_eq!(total.value, PACED * (PACED + 1) / 2);

    // Server-streaming, ended by Data remote-closed.
    let count = stub
        .count(&ours::Number { value: COUNT }, &std_opts())
        .unwrap();
    let mut got = Vec::new();
    while let Some(n) = count.recv().unwrap() {
        got.push(n.value);
    }
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());

    // Bidirectional, in lockstep (empty text included), from a second
    // thread receiving while this one sends.
    let chat = stub.chat(&std_opts()).unwrap();
    let words: Vec<String> = (0..PACED)
        .map(|i| {
            if i == 1 {
                String::new()
            } else {
                format!("word {i}")
            }
        })
        .collect();
    let (answered_tx, answered) = std::sync::mpsc::channel();
    thread::scope(|s| {
        s.spawn(|| {
            for w in &words {
                let answer = chat.recv().unwrap().expect("an answer");
                assert_eq!(answer.text, reversed(w));
                answered_tx.send(()).unwrap();
            }
            assert_eq!(chat.recv().unwrap(), None);
        });
        for w in &words {
            chat.send(&ours::Text { text: w.clone() }).unwrap();
            answered.recv().unwrap();
        }
        chat.close_send().unwrap();
    });

    // Unary on the same connection.
    let echo = stub
        .echo(
            &ours::Text {
                text: "unary".into(),
            },
            &std_opts(),
        )
        .unwrap();
    assert_eq!(echo.text, "unary");
}

/// The mio client on a loop of its own (this thread's).
struct MioLoop {
    poll: mio::Poll,
    events: mio::Events,
    client: ttrpc_mio::Client,
}

impl MioLoop {
    fn connect(address: &str) -> Self {
        let poll = mio::Poll::new().unwrap();
        let client = ttrpc_mio::Client::connect(
            address,
            ttrpc_mio::Config::default(),
            poll.registry(),
            mio::Token(1),
        )
        .expect("connect");
        Self {
            poll,
            events: mio::Events::with_capacity(16),
            client,
        }
    }

    fn turn(&mut self) {
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(10)))
            .unwrap();
        for event in &self.events {
            self.client.handle_event(event);
        }
        self.client.handle_timeout(Instant::now());
    }

    /// The next item of stream `id` (10 s at most).
    fn recv(&mut self, id: ttrpc_mio::StreamId) -> ttrpc_mio::StreamItem {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(item) = self.client.recv(id) {
                return item;
            }
            assert!(Instant::now() < deadline, "nothing on stream {id}");
            self.turn();
        }
    }

    /// Every message of stream `id` and how it ended.
    fn collect(
        &mut self,
        id: ttrpc_mio::StreamId,
    ) -> (Vec<bytes_of::Bytes>, Result<(), ttrpc_core::CallError>) {
        let mut got = Vec::new();
        loop {
            match self.recv(id) {
                ttrpc_mio::StreamItem::Message(m) => got.push(m),
                ttrpc_mio::StreamItem::End(end) => return (got, end),
            }
        }
    }

    /// A unary call's answer.
    fn call(&mut self, service: &str, method: &str, payload: &[u8]) -> bytes_of::Bytes {
        let opts = ttrpc_mio::CallOptions::with_timeout(Duration::from_secs(10));
        let call = self.client.call(service, method, payload, &opts).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((id, result)) = self.client.poll_completion() {
                assert_eq!(id, call);
                return result.unwrap();
            }
            assert!(Instant::now() < deadline, "no answer to {method}");
            self.turn();
        }
    }
}

mod bytes_of {
    pub(super) use ttrpc_core::Bytes;
}

#[test]
fn ttrpc_mio_client_against_ttrpc_rust_server() {
    use ttrpc_core::prost::Message;
    use ttrpc_mio::{StreamItem, StreamKind};

    let dir = TempDir::new("interop-rust-srv-mio").unwrap();
    let (path, address) = socket(&dir, "rust.sock");
    let _server = RustServer::start(&address, &path);
    let mut l = MioLoop::connect(&address);
    let opts = ttrpc_mio::CallOptions::with_timeout(Duration::from_secs(10));
    let service = ours::STREAMS_SERVICE;

    // Client-streaming in lockstep (see the file docs): a unary round trip
    // between messages.
    let sum = l
        .client
        .open_stream(service, "Sum", StreamKind::ClientStreaming, b"", &opts)
        .unwrap();
    for value in 1..=PACED {
        let m = ours::Number { value }.encode_to_vec();
        l.client.send(sum, &m).unwrap();
        l.call(service, "Echo", b"");
    }
    l.client.close_send(sum).unwrap();
    let (got, end) = l.collect(sum);
    end.unwrap();
    assert_eq!(got.len(), 1);
    let total = ours::Number::decode(got[0].clone()).unwrap();
    assert_eq!(total.value, PACED * (PACED + 1) / 2);

    // Server-streaming: ttrpc-rust pipelines, we read at our pace.
    let request = ours::Number { value: COUNT }.encode_to_vec();
    let count = l
        .client
        .open_stream(
            service,
            "Count",
            StreamKind::ServerStreaming,
            &request,
            &opts,
        )
        .unwrap();
    let (got, end) = l.collect(count);
    end.unwrap();
    let got: Vec<u64> = got
        .into_iter()
        .map(|m| ours::Number::decode(m).unwrap().value)
        .collect();
    assert_eq!(got, (0..COUNT).collect::<Vec<_>>());

    // Bidirectional in lockstep: one answer before the next message.
    let chat = l
        .client
        .open_stream(service, "Chat", StreamKind::Bidirectional, b"", &opts)
        .unwrap();
    for i in 0..PACED {
        let text = format!("word {i}");
        let m = ours::Text { text: text.clone() };
        l.client.send(chat, &m.encode_to_vec()).unwrap();
        match l.recv(chat) {
            StreamItem::Message(m) => {
                assert_eq!(ours::Text::decode(m).unwrap().text, reversed(&text));
            }
            StreamItem::End(end) => panic!("Chat ended early: {end:?}"),
        }
    }
    l.client.close_send(chat).unwrap();
    let (got, end) = l.collect(chat);
    end.unwrap();
    assert!(got.is_empty());

    let echo = l.call(
        service,
        "Echo",
        &ours::Text {
            text: "unary".into(),
        }
        .encode_to_vec(),
    );
    assert_eq!(ours::Text::decode(echo).unwrap().text, "unary");
}

// ------------------------------------------------------------ ttrpc-rust client

fn rust_ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(10_000_000_000)
}

/// Runs every stream kind from a ttrpc-rust async client against the server
/// at `address`.
fn rust_client_cases(address: &str) {
    let rt = runtime();
    rt.block_on(async {
        let client = ttrpc::r#async::Client::connect(address)
            .await
            .expect("ttrpc-rust connect");
        let stub = rsvc::StreamsClient::new(client);

        let mut sum = stub.sum(rust_ctx()).await.expect("open Sum");
        for value in 1..=COUNT {
            sum.send(&rmsg::Number {
                value,
                ..Default::default()
            })
            .await
            .expect("send");
        }
        let total = sum.close_and_recv().await.expect("Sum answer");
        assert_eq!(total.value, COUNT * (COUNT + 1) / 2);

        let request = rmsg::Number {
            value: COUNT,
            ..Default::default()
        };
        let mut count = stub.count(rust_ctx(), &request).await.expect("open Count");
        let mut got = Vec::new();
        while let Some(n) = count.recv().await.expect("Count message") {
            got.push(n.value);
        }
        assert_eq!(got, (0..COUNT).collect::<Vec<_>>());

        let chat = stub.chat(rust_ctx()).await.expect("open Chat");
        let (tx, mut rx) = chat.split();
        // Word 0 is empty: an empty message is a Data frame with no payload.
        let word = |i: u64| {
            if i == 0 {
                String::new()
            } else {
                format!("word {i}")
            }
        };
        let sender = tokio::spawn(async move {
            for i in 0..COUNT {
                tx.send(&rmsg::Text {
                    text: word(i),
                    ..Default::default()
                })
                .await
                .expect("send");
            }
            tx.close_send().await.expect("close_send");
        });
        for i in 0..COUNT {
            let t = rx.recv().await.expect("Chat answer");
            assert_eq!(t.text, reversed(&word(i)));
        }
        match rx.recv().await {
            Err(ttrpc::Error::Eof) => {}
            other => panic!("Chat did not end cleanly: {other:?}"),
        }
        sender.await.unwrap();

        let echo = stub
            .echo(
                rust_ctx(),
                &rmsg::Text {
                    text: "unary".into(),
                    ..Default::default()
                },
            )
            .await
            .expect("Echo");
        assert_eq!(echo.text, "unary");
    });
}

#[test]
fn ttrpc_rust_client_against_ttrpc_std_server() {
    let dir = TempDir::new("interop-rust-cli-std").unwrap();
    let (path, address) = socket(&dir, "std.sock");
    let mut registry = ttrpc_std::Registry::new();
    ours::register_streams(&mut registry, Arc::new(ours::Reference));
    let server = ttrpc_std::Server::new(registry).unwrap();
    let listener = ttrpc_std::Address::Path(path).bind().unwrap();
    let serving = thread::spawn({
        let server = server.clone();
        move || server.serve(listener)
    });
    rust_client_cases(&address);
    assert!(server.shutdown(Duration::from_secs(10)));
    serving.join().unwrap().unwrap();
}

// ------------------------------------------------------------ ttrpc-mio server

mod mio_sessions {
    use ttrpc_core::prost::Message;
    use ttrpc_mio::{Error, StreamCtx, StreamItem, StreamSession};
    use ttrpc_testkit::streams::{Number, Text, reversed};

    pub(super) struct Sum(pub(super) u64);

    impl StreamSession for Sum {
        fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
            while let Some(item) = s.recv() {
                match item {
                    StreamItem::Message(m) => {
                        self.0 += Number::decode(m).map_or(0, |n| n.value);
                    }
                    StreamItem::End(Ok(())) => {
                        let answer = Number { value: self.0 }.encode_to_vec();
                        return s.respond(Ok(answer.into()));
                    }
                    StreamItem::End(Err(_)) => return,
                }
            }
        }
    }

    /// Sends 0..n, resuming after `Busy`.
    pub(super) struct Count {
        pub(super) next: u64,
        pub(super) n: u64,
    }

    impl Count {
        fn pump(&mut self, s: &mut StreamCtx<'_>) {
            while self.next < self.n {
                match s.send(&Number { value: self.next }.encode_to_vec()) {
                    Ok(()) => self.next += 1,
                    Err(Error::Busy) => return,
                    Err(_) => return s.close(),
                }
            }
            s.close();
        }
    }

    impl StreamSession for Count {
        fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
            while s.recv().is_some() {}
            self.pump(s);
        }
        fn on_writable(&mut self, s: &mut StreamCtx<'_>) {
            self.pump(s);
        }
    }

    /// Answers each text reversed; closes after the client's end. (Answers
    /// are small and few: a full queue is not expected here.)
    pub(super) struct Chat;

    impl StreamSession for Chat {
        fn on_readable(&mut self, s: &mut StreamCtx<'_>) {
            while let Some(item) = s.recv() {
                match item {
                    StreamItem::Message(m) => {
                        let t = Text::decode(m).unwrap_or_default();
                        let answer = Text {
                            text: reversed(&t.text),
                        };
                        s.send(&answer.encode_to_vec()).expect("queue not full");
                    }
                    StreamItem::End(Ok(())) => return s.close(),
                    StreamItem::End(Err(_)) => return,
                }
            }
        }
    }
}

#[test]
fn ttrpc_rust_client_against_ttrpc_mio_server() {
    use mio::Poll;
    use ttrpc_core::prost::Message;

    let dir = TempDir::new("interop-rust-cli-mio").unwrap();
    let (_path, address) = socket(&dir, "mio.sock");
    let poll = Poll::new().unwrap();
    let mut unary = ttrpc_mio::Registry::new();
    unary.register_fn(ours::STREAMS_SERVICE, "Echo", |req| {
        let t = ours::Text::decode(req.payload.clone())
            .map_err(|e| ttrpc_mio::Status::new(ttrpc_mio::Code::InvalidArgument, e.to_string()))?;
        Ok(t.encode_to_vec().into())
    });
    let mut server = ttrpc_mio::Server::bind(
        &address,
        unary,
        ttrpc_mio::ServerConfig::default(),
        poll.registry(),
        10..100,
    )
    .unwrap();
    server
        .register_stream(ours::STREAMS_SERVICE, "Sum", |_| {
            Box::new(mio_sessions::Sum(0))
        })
        .register_stream(ours::STREAMS_SERVICE, "Count", |req| {
            let n = ours::Number::decode(req.payload.clone()).map_or(0, |n| n.value);
            Box::new(mio_sessions::Count { next: 0, n })
        })
        .register_stream(ours::STREAMS_SERVICE, "Chat", |_| {
            Box::new(mio_sessions::Chat)
        });
    let handle = server.handle();
    let serving = thread::spawn(move || {
        let mut poll = poll;
        server.run(&mut poll)
    });
    rust_client_cases(&address);
    handle.shutdown(Duration::from_secs(10));
    serving.join().unwrap().unwrap();
}
