//! The generated stubs end to end, in process: a fake task v2 shim
//! implementing the generated `Task` trait (Wait answers later, from
//! another thread), routed by `register_task`, called through the
//! generated `TaskClient` over a socket pair with ttrpc-std.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ttrpc_core::stub::{Reply, UnaryCall};
use ttrpc_core::{CallOptions, Code, IncomingRequest, Registry};
use ttrpc_std::{Client, Server};

use crate::proto::task::{self, Task};
use crate::wkt::Timestamp;

#[derive(Default)]
struct FakeShim {
    waiters: Mutex<Vec<Reply<task::WaitResponse>>>,
}

impl Task for FakeShim {
    fn state(
        &self,
        ctx: &IncomingRequest,
        request: task::StateRequest,
        reply: Reply<task::StateResponse>,
    ) {
        assert_eq!(ctx.method, "State");
        reply.ok(&task::StateResponse {
            id: request.id,
            pid: 42,
            status: 2,
            exited_at: Some(Timestamp {
                seconds: -62_135_596_800,
                nanos: 0,
            }),
            ..Default::default()
        });
    }

    fn wait(
        &self,
        _ctx: &IncomingRequest,
        _request: task::WaitRequest,
        reply: Reply<task::WaitResponse>,
    ) {
        // Keep the reply: answered when Kill comes.
        self.waiters.lock().unwrap().push(reply);
    }

    fn kill(&self, _ctx: &IncomingRequest, request: task::KillRequest, reply: Reply<()>) {
        let waiters: Vec<_> = self.waiters.lock().unwrap().drain(..).collect();
        let status = 128 + request.signal;
        std::thread::spawn(move || {
            for w in waiters {
                w.ok(&task::WaitResponse {
                    exit_status: status,
                    exited_at: Some(Timestamp::default()),
                });
            }
        });
        reply.ok(&());
    }
}

fn serve_v2() -> (Arc<Server>, Client) {
    let mut registry = Registry::new();
    task::register_task(&mut registry, Arc::new(FakeShim::default()));
    let server = Arc::new(Server::new(registry).unwrap());
    let (a, b) = UnixStream::pair().unwrap();
    let s = Arc::clone(&server);
    std::thread::spawn(move || {
        let _ = s.serve_connection(a);
    });
    (server, Client::new(b).unwrap())
}

#[test]
fn generated_client_and_server_round_trip() {
    let (_server, client) = serve_v2();
    let stub = task::TaskClient::new(&client);
    let opts = CallOptions::with_timeout(Duration::from_secs(5));
    let state = stub
        .state(
            &task::StateRequest {
                id: "c1".into(),
                exec_id: String::new(),
            },
            &opts,
        )
        .unwrap();
    assert_eq!((state.id.as_str(), state.pid, state.status), ("c1", 42, 2));
    assert_eq!(state.exited_at.unwrap().seconds, -62_135_596_800);

    // Wait is answered later, from another thread, when Kill arrives.
    let waiter = std::thread::scope(|s| {
        let w = s.spawn(|| stub.wait(&task::WaitRequest::default(), &CallOptions::default()));
        std::thread::sleep(Duration::from_millis(100));
        stub.kill(
            &task::KillRequest {
                signal: 15,
                ..Default::default()
            },
            &opts,
        )
        .unwrap();
        w.join().unwrap()
    });
    assert_eq!(waiter.unwrap().exit_status, 143);

    // Methods the implementation leaves out answer Unimplemented ("method X").
    let err = stub
        .pause(&task::PauseRequest { id: "c1".into() }, &opts)
        .unwrap_err();
    let status = err.status().unwrap();
    assert_eq!(
        (status.code, status.message.as_str()),
        (Code::Unimplemented, "method Pause")
    );

    // The same stub under the v3 name: the fake only serves v2, so the
    // whole service is Unimplemented, which is what --api auto moves on on.
    let v3 = task::TaskClient::with_service(&client, crate::proto::task_v3::TASK_SERVICE);
    let err = v3
        .connect(&task::ConnectRequest::default(), &opts)
        .unwrap_err();
    let status = err.status().unwrap();
    assert_eq!(status.code, Code::Unimplemented);
    assert_eq!(status.message, "service containerd.task.v3.Task");

    // A payload that does not decode is InvalidArgument, never a panic.
    let err = client
        .call_raw(task::TASK_SERVICE, "State", &[0xff, 0xff, 0xff], &opts)
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // Through the UnaryCall trait too.
    let answer = UnaryCall::call_raw(&client, task::TASK_SERVICE, "State", &[], &opts).unwrap();
    assert!(!answer.is_empty());
}
