//! The connection to a shim: ttrpc-core's client state machine driven on the
//! calling thread, one call at a time, over a blocking unix socket.
//!
//! shimctl never has two calls in flight (attach resizes between copies on
//! the same thread), so it needs none of ttrpc-std's reader thread and
//! channels. That matters for size: in a static glibc binary the first
//! `std::thread::spawn` costs about 78 KiB (pthread_create drags in the
//! resolver's per-thread state, netlink and getifaddrs) and channels about
//! 20 KiB more (cli/README.md). Errors are ttrpc-std's, so they print and
//! map to exit codes as before.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ttrpc_core::stub::UnaryCall;
use ttrpc_core::{
    Bytes, CallOptions, ClientConnection, ClientEvent, Config, ConnectionError, StreamId,
};
use ttrpc_std::Error;

/// Bytes read from the socket per `read`.
const READ_CHUNK: usize = 16 * 1024;

/// A connected shim.
#[derive(Debug)]
pub(crate) struct Conn {
    sock: UnixStream,
    core: RefCell<ClientConnection>,
}

impl Conn {
    pub(crate) fn new(sock: UnixStream) -> Self {
        Self {
            sock,
            core: RefCell::new(ClientConnection::new(Config::default())),
        }
    }

    /// Writes everything queued; a failed write ends the connection.
    fn flush(&self, core: &mut ClientConnection) {
        while let Some(buf) = core.poll_transmit() {
            match (&self.sock).write(buf) {
                Ok(0) => {
                    core.close(ConnectionError::Transport("write: wrote nothing".into()));
                }
                Ok(n) => core.advance_transmit(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => core.close(ConnectionError::Transport(format!("write: {e}"))),
            }
        }
    }

    /// Reads once, waiting at most until the core's next deadline.
    fn read(&self, core: &mut ClientConnection, buf: &mut [u8]) {
        let wait = core.poll_timeout().map(|at| {
            at.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        if let Err(e) = self.sock.set_read_timeout(wait) {
            core.close(ConnectionError::Transport(format!("read timeout: {e}")));
            return;
        }
        match (&self.sock).read(buf) {
            Ok(0) => core.handle_eof(Instant::now()),
            Ok(n) => core.handle_input(Instant::now(), buf.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                core.handle_timeout(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => core.close(ConnectionError::Transport(format!("read: {e}"))),
        }
    }

    /// Our call's outcome, if the core has reported it.
    fn outcome(core: &mut ClientConnection, id: StreamId) -> Option<Result<Bytes, Error>> {
        while let Some(event) = core.poll_event() {
            match event {
                ClientEvent::Response { id: got, result } if got == id => {
                    return Some(result.map_err(Error::from));
                }
                ClientEvent::Closed { reason } => return Some(Err(Error::Closed(reason))),
                _ => {}
            }
        }
        None
    }
}

impl UnaryCall for Conn {
    type Error = Error;

    /// Sends the request and drives the connection until its answer, its
    /// deadline (`options.timeout`) or the end of the connection.
    fn call_raw(
        &self,
        service: &str,
        method: &str,
        payload: &[u8],
        options: &CallOptions,
    ) -> Result<Bytes, Error> {
        let mut core = self.core.borrow_mut();
        let id = core.send_request(Instant::now(), service, method, payload, options)?;
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            self.flush(&mut core);
            if let Some(result) = Self::outcome(&mut core, id) {
                return result;
            }
            self.read(&mut core, &mut buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use prost::Message;
    use ttrpc_core::{Code, FrameType, HEADER_LEN, Request, Response, Status};

    use super::*;

    /// Reads one frame from `sock`.
    fn frame(sock: &mut UnixStream) -> (u32, FrameType, Vec<u8>) {
        let mut header = [0u8; HEADER_LEN];
        sock.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header[..4].try_into().unwrap());
        let id = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let mut data = vec![0u8; len as usize];
        sock.read_exact(&mut data).unwrap();
        (id, FrameType::from(header[8]), data)
    }

    fn answer(sock: &mut UnixStream, id: u32, response: &Response) {
        let data = response.encode_to_vec();
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&data);
        sock.write_all(&out).unwrap();
    }

    #[test]
    fn calls_answers_statuses_deadlines_and_eof() {
        let (a, mut peer) = UnixStream::pair().unwrap();
        let conn = Conn::new(a);
        let opts = CallOptions::with_timeout(Duration::from_secs(5));
        let server = std::thread::spawn(move || {
            // 1: answered in two pieces.
            let (id, kind, data) = frame(&mut peer);
            assert_eq!(kind, FrameType::Request);
            let req = Request::decode(&data[..]).unwrap();
            assert_eq!((req.service.as_str(), req.method.as_str()), ("svc", "Echo"));
            let mut bytes = Response {
                status: None,
                payload: req.payload,
            }
            .encode_to_vec();
            let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&[2, 0]);
            out.append(&mut bytes);
            peer.write_all(&out[..7]).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            peer.write_all(&out[7..]).unwrap();
            // 2: a status.
            let (id, _, _) = frame(&mut peer);
            let status = Status::new(Code::NotFound, "no such task");
            answer(
                &mut peer,
                id,
                &Response {
                    status: Some(status.into()),
                    payload: Bytes::new(),
                },
            );
            // 3: never answered (deadline); 4: answered after EOF? No: EOF.
            let _ = frame(&mut peer);
            let _ = frame(&mut peer);
            drop(peer);
        });
        let got = conn.call_raw("svc", "Echo", b"ping", &opts).unwrap();
        assert_eq!(&got[..], b"ping");
        let err = conn.call_raw("svc", "Find", b"", &opts).unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{err}");
        let short = CallOptions::with_timeout(Duration::from_millis(50));
        let err = conn.call_raw("svc", "Slow", b"", &short).unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
        let err = conn.call_raw("svc", "Gone", b"", &opts).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        server.join().unwrap();
        // Closed for good.
        let err = conn.call_raw("svc", "After", b"", &opts).unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err}");
    }
}
