//! Generated stream stubs (ttrpc-core's codegen, built by testkit's
//! build.rs from `streams.proto`) over ttrpc-std: each stream kind through
//! the typed client and the typed server trait, and the trait's
//! `Unimplemented` defaults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use ttrpc_std::{CallOptions, Code, Registry, ServerConfig};
use ttrpc_testkit::streams::{
    Number, Reference, Streams, StreamsClient, Text, register_streams, reversed,
};

fn opts() -> CallOptions {
    CallOptions::with_timeout(Duration::from_secs(10))
}

fn serve(service: Arc<impl Streams>) -> TestServer {
    let mut registry = Registry::new();
    register_streams(&mut registry, service);
    TestServer::start(registry, ServerConfig::default())
}

#[test]
fn every_stream_kind_through_generated_stubs() {
    let server = serve(Arc::new(Reference));
    let client = server.client();
    let stub = StreamsClient::new(&client);

    let sum = stub.sum(&opts()).unwrap();
    for value in 1..=10 {
        sum.send(&Number { value }).unwrap();
    }
    assert_eq!(sum.close_and_recv().unwrap(), Number { value: 55 });

    let count = stub.count(&Number { value: 5 }, &opts()).unwrap();
    let mut got = Vec::new();
    while let Some(n) = count.recv().unwrap() {
        got.push(n.value);
    }
    assert_eq!(got, [0, 1, 2, 3, 4]);

    let chat = stub.chat(&opts()).unwrap();
    for word in ["ttrpc", "streams", ""] {
        chat.send(&Text { text: word.into() }).unwrap();
        let answer = chat.recv().unwrap().expect("an answer per message");
        assert_eq!(answer.text, reversed(word));
    }
    chat.close_send().unwrap();
    assert_eq!(chat.recv().unwrap(), None);

    let echo = stub
        .echo(
            &Text {
                text: "unary".into(),
            },
            &opts(),
        )
        .unwrap();
    assert_eq!(echo.text, "unary");
}

struct Nothing;
impl Streams for Nothing {}

#[test]
fn unimplemented_stream_methods_answer_unimplemented() {
    let server = serve(Arc::new(Nothing));
    let client = server.client();
    let stub = StreamsClient::new(&client);
    let err = stub.sum(&opts()).unwrap().close_and_recv().unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert_eq!(err.to_string(), "Unimplemented: method Sum");
    let err = stub
        .count(&Number { value: 1 }, &opts())
        .unwrap()
        .recv()
        .unwrap_err();
    assert_eq!(err.to_string(), "Unimplemented: method Count");
    let err = stub.chat(&opts()).unwrap().recv().unwrap_err();
    assert_eq!(err.to_string(), "Unimplemented: method Chat");
}
