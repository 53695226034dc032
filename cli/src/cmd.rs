//! Connecting (address derivation as `ctr shim --id`), API selection, and
//! the commands.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use nix::sys::signalfd::SignalFd;
use ttrpc_core::stub::UnaryCall as _;
use ttrpc_core::{CallOptions, Code};
use ttrpc_std::Address;

use crate::Fail;
use crate::args::{ApiSel, Cmd, Opts};
use crate::attach::Attach;
use crate::conn::Conn;
use crate::json::Value;
use crate::proto::{shim_v1 as v1, task, task_v3};
use crate::schema::{self, MessageId};
use crate::wkt::{Any, Timestamp};
use crate::{json, sha256, spec, stdio};

/// A shim API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    V3,
    V2,
    V1,
}

impl Api {
    fn service(self) -> &'static str {
        match self {
            Self::V3 => task_v3::TASK_SERVICE,
            Self::V2 => task::TASK_SERVICE,
            Self::V1 => v1::SHIM_SERVICE,
        }
    }
}

/// Go's `path.Clean` for absolute and relative slash paths.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let mut out = String::new();
    if rooted {
        out.push('/');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Go's `filepath.Join`: non-empty elements joined by `/`, then cleaned;
/// all empty gives "".
pub(crate) fn join(elems: &[&str]) -> String {
    let mut joined = String::new();
    for e in elems.iter().filter(|e| !e.is_empty()) {
        if !joined.is_empty() {
            joined.push('/');
        }
        joined.push_str(e);
    }
    if joined.is_empty() {
        joined
    } else {
        clean(&joined)
    }
}

/// The addresses `ctr shim --id` (containerd 1.6) tries, in order: the
/// path socket `/run/containerd/s/<hex sha256(filepath.Join(ADDRESS, NS,
/// ID))>`, then the pre-CVE-2020-15257 abstract
/// `\0/containerd-shim/NS/ID/shim.sock` (dialled as Go dials `"\x00"+name`).
pub(crate) fn derived_addresses(address: &str, namespace: &str, id: &str) -> Vec<Address> {
    let hash = sha256::hex_digest(join(&[address, namespace, id]).as_bytes());
    vec![
        Address::Path(format!("/run/containerd/s/{hash}").into()),
        Address::LegacyAbstract(format!("/containerd-shim/{namespace}/{id}/shim.sock")),
    ]
}

/// A connected shim and the command line.
pub(crate) struct Ctx {
    o: Opts,
    conn: Conn,
    /// The signals an attached tty exec handles (blocked at connect).
    signals: Option<SignalFd>,
    /// The API the shim answered to (fixed after the first call in auto).
    api: Cell<Option<Api>>,
    /// Every call's options but `wait`'s: built once, not per call (each
    /// temporary costs a drop and a landing pad at every call site).
    call_opts: CallOptions,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

fn status_unimplemented_service(e: &Fail, service: &str) -> bool {
    match e {
        Fail::Rpc(ttrpc_std::Error::Status(s)) => {
            s.code == Code::Unimplemented && s.message.trim_ascii() == format!("service {service}")
        }
        _ => false,
    }
}

impl Ctx {
    pub(crate) fn connect(o: Opts) -> Result<Self, Fail> {
        let candidates = match &o.socket {
            Some(s) => vec![Address::parse(s).map_err(|e| Fail::Usage(format!("--socket: {e}")))?],
            None => {
                let id = o.positionals_id().ok_or_else(|| {
                    Fail::Usage("--id ID (or --socket ADDR) is required to find the shim".into())
                })?;
                derived_addresses(&o.address, &o.namespace, &id)
            }
        };
        let signals = if o.cmd == Cmd::Exec && o.attach && o.tty {
            stdio::block_signals()
        } else {
            None
        };
        let mut tried = Vec::new();
        for addr in &candidates {
            match addr.connect() {
                Ok(sock) => {
                    let call_opts = CallOptions::with_timeout(o.timeout.unwrap_or(DEFAULT_TIMEOUT));
                    return Ok(Self {
                        call_opts,
                        o,
                        conn: Conn::new(sock),
                        signals,
                        api: Cell::new(None),
                    });
                }
                Err(ttrpc_std::Error::Io { source, .. }) => tried.push(format!("{addr}: {source}")),
                Err(e) => tried.push(format!("{addr}: {e}")),
            }
        }
        Err(Fail::Unreachable(format!(
            "could not reach the shim; tried {}",
            tried.join("; ")
        )))
    }

    fn opts(&self) -> &CallOptions {
        &self.call_opts
    }

    /// The container id: the positional ID where the command takes one,
    /// else `--id`.
    fn cid(&self) -> Result<String, Fail> {
        self.o
            .positionals_id()
            .ok_or_else(|| Fail::Usage(format!("{}: --id ID is required", self.o.cmd)))
    }

    /// The exec id, "" for the init process.
    fn eid(&self) -> String {
        self.o.exec_id.clone().unwrap_or_default()
    }

    /// The v1 process id: `--exec-id` if given, else the container id.
    fn v1_id(&self) -> Result<String, Fail> {
        match &self.o.exec_id {
            Some(e) => Ok(e.clone()),
            None => self.cid(),
        }
    }

    /// The task API client for `api` (v3 and v2 share messages; only the
    /// service name differs).
    fn task(&self, api: Api) -> task::TaskClient<&Conn> {
        task::TaskClient::with_service(&self.conn, api.service())
    }

    fn v1(&self) -> v1::ShimClient<&Conn> {
        v1::ShimClient::new(&self.conn)
    }

    /// Calls `method` of `api` with `{id, exec_id}` and returns the answer
    /// as the JSON of the message `answer` (printed from its wire bytes:
    /// see `json::to_pretty`). Every JSON command's request is task's
    /// `StateRequest` on the wire: with no exec id it encodes as the
    /// `{id}` requests (v1's `StateRequest` and `ListPidsRequest`, task's
    /// `PidsRequest`, `StatsRequest` and `ConnectRequest`).
    fn call_json(
        &self,
        api: Api,
        method: &str,
        id: String,
        exec_id: String,
        answer: MessageId,
    ) -> Result<String, Fail> {
        let service = api.service();
        let request = prost::Message::encode_to_vec(&task::StateRequest { id, exec_id });
        let bytes = self.conn.call_raw(service, method, &request, self.opts())?;
        json::to_pretty(answer, &bytes).map_err(|e| {
            Fail::Rpc(ttrpc_std::Error::Protocol(format!(
                "{service}/{method}: malformed answer: {e}"
            )))
        })
    }

    /// Runs `f` with each candidate API until one implements its service.
    fn each<T>(&self, mut f: impl FnMut(Api) -> Result<T, Fail>) -> Result<T, Fail> {
        // The loop is not generic (one copy for every command), `f`'s
        // answer waits in `out`.
        let mut out = None;
        self.each_api(&mut |api| {
            out = Some(f(api)?);
            Ok(())
        })?;
        out.ok_or_else(|| Fail::Other("no API to try".into()))
    }

    fn each_api(&self, f: &mut dyn FnMut(Api) -> Result<(), Fail>) -> Result<(), Fail> {
        if let Some(api) = self.api.get() {
            return f(api);
        }
        let order: &[Api] = match self.o.api {
            ApiSel::Auto => &[Api::V3, Api::V2, Api::V1],
            ApiSel::V3 => &[Api::V3],
            ApiSel::V2 => &[Api::V2],
            ApiSel::V1 => &[Api::V1],
        };
        let mut last = None;
        for &api in order {
            match f(api) {
                Err(e) if status_unimplemented_service(&e, api.service()) => last = Some(e),
                other => {
                    if !matches!(other, Err(Fail::Unsupported(_) | Fail::Usage(_))) {
                        self.api.set(Some(api));
                    }
                    return other;
                }
            }
        }
        Err(last.unwrap_or_else(|| Fail::Other("no API to try".into())))
    }

    pub(crate) fn dispatch(&self) -> Result<(), Fail> {
        match self.o.cmd {
            Cmd::Create => self.create(),
            Cmd::Start => self.start(),
            Cmd::State | Cmd::Pids | Cmd::Stats | Cmd::Connect => self.show(),
            Cmd::Delete => self.delete(),
            Cmd::Exec => self.exec(),
            Cmd::Kill => self.kill(),
            Cmd::Wait => self.wait(),
            Cmd::Pause => self.pause(true),
            Cmd::Resume => self.pause(false),
            Cmd::CloseIo => self.close_io(),
            Cmd::Resize => self.resize(self.o.width.unwrap_or(0), self.o.height.unwrap_or(0)),
            Cmd::Shutdown => self.shutdown(),
            other => Err(Fail::Usage(format!("{other}: not a shim call"))),
        }
    }

    fn stdio_paths(&self) -> Result<[String; 3], Fail> {
        let mut out: [String; 3] = Default::default();
        for (slot, p) in out
            .iter_mut()
            .zip([&self.o.stdin, &self.o.stdout, &self.o.stderr])
        {
            if let Some(p) = p {
                stdio::prepare_fifo(p)?;
                *slot = stdio::absolute(p);
            }
        }
        Ok(out)
    }

    fn create(&self) -> Result<(), Fail> {
        let bundle = stdio::absolute(self.o.bundle.as_deref().unwrap_or("."));
        let id = self.cid()?;
        let [stdin, stdout, stderr] = self.stdio_paths()?;
        // Built once, whichever APIs are tried; v1's is made from it.
        let req = task::CreateTaskRequest {
            id,
            bundle,
            terminal: self.o.tty,
            stdin,
            stdout,
            stderr,
            ..Default::default()
        };
        let pid = self.each(|api| {
            if self.o.runtime.is_some() && api != Api::V1 {
                if self.o.api == ApiSel::Auto {
                    // Only v1 takes a runtime: in auto, go straight on to it.
                    return Err(Fail::Rpc(ttrpc_std::Error::Status(
                        ttrpc_core::Status::new(
                            Code::Unimplemented,
                            format!("service {}", api.service()),
                        ),
                    )));
                }
                return Err(Fail::Usage("--runtime is for the v1 API only".into()));
            }
            Ok(match api {
                Api::V3 | Api::V2 => self.task(api).create(&req, self.opts())?.pid,
                Api::V1 => {
                    let req = v1::CreateTaskRequest {
                        id: req.id.clone(),
                        bundle: req.bundle.clone(),
                        runtime: self.o.runtime.clone().unwrap_or_else(|| "runc".into()),
                        terminal: req.terminal,
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        ..Default::default()
                    };
                    self.v1().create(&req, self.opts())?.pid
                }
            })
        })?;
        println!("{pid}");
        Ok(())
    }

    fn start_process(&self, id: &str, exec_id: &str) -> Result<u32, Fail> {
        self.each(|api| {
            let req = task::StartRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
            };
            Ok(match api {
                Api::V3 | Api::V2 => self.task(api).start(&req, self.opts())?.pid,
                Api::V1 => {
                    let pid = if exec_id.is_empty() { id } else { exec_id };
                    let req = v1::StartRequest { id: pid.to_owned() };
                    self.v1().start(&req, self.opts())?.pid
                }
            })
        })
    }

    fn start(&self) -> Result<(), Fail> {
        let pid = self.start_process(&self.cid()?, &self.eid())?;
        println!("{pid}");
        Ok(())
    }

    /// state, pids, stats and connect: one call, its answer printed as
    /// JSON.
    fn show(&self) -> Result<(), Fail> {
        let cmd = self.o.cmd;
        let out = self.each(|api| {
            let (method, answer) = match (cmd, api) {
                (Cmd::State, Api::V1) => ("State", schema::V1_STATE),
                (Cmd::State, _) => ("State", schema::TASK_STATE),
                (Cmd::Pids, Api::V1) => ("ListPids", schema::V1_LIST_PIDS),
                (Cmd::Pids, _) => ("Pids", schema::TASK_PIDS),
                (_, Api::V1) => {
                    return Err(Fail::Unsupported(format!("{cmd} is not in the v1 API")));
                }
                (Cmd::Stats, _) => ("Stats", schema::TASK_STATS),
                _ => ("Connect", schema::TASK_CONNECT),
            };
            let (id, exec_id) = match (cmd, api) {
                (Cmd::State, Api::V1) => (self.v1_id()?, String::new()),
                (Cmd::State, _) => (self.cid()?, self.eid()),
                _ => (self.cid()?, String::new()),
            };
            self.call_json(api, method, id, exec_id, answer)
        })?;
        print!("{out}");
        Ok(())
    }

    /// The container's bundle directory, from State's answer read as its
    /// JSON (decoding the typed answers would link two more decoders for
    /// this one string).
    fn bundle(&self) -> Option<String> {
        let json = self
            .each(|api| {
                let answer = match api {
                    Api::V1 => schema::V1_STATE,
                    _ => schema::TASK_STATE,
                };
                self.call_json(api, "State", self.cid()?, String::new(), answer)
            })
            .ok()?;
        match Value::parse(json.as_bytes()).ok()?.remove("bundle") {
            Some(Value::String(b)) => Some(b),
            // Left out of the JSON when empty.
            _ => Some(String::new()),
        }
    }

    fn delete(&self) -> Result<(), Fail> {
        let (status, _) = self.each(|api| {
            let r = match api {
                Api::V1 => match &self.o.exec_id {
                    Some(e) => {
                        let req = v1::DeleteProcessRequest { id: e.clone() };
                        self.v1().delete_process(&req, self.opts())?
                    }
                    None => self.v1().delete(&(), self.opts())?,
                }
                .pipe(|r| (r.exit_status, r.exited_at)),
                _ => {
                    let req = task::DeleteRequest {
                        id: self.cid()?,
                        exec_id: self.eid(),
                    };
                    let r = self.task(api).delete(&req, self.opts())?;
                    (r.exit_status, r.exited_at)
                }
            };
            Ok(r)
        })?;
        println!("container deleted and returned exit status {status}");
        Ok(())
    }

    /// The OCI `Process` to run: `--spec FILE` as is, else the bundle's
    /// `config.json` process with the command line applied.
    fn exec_spec(&self) -> Result<Vec<u8>, Fail> {
        if let Some(file) = &self.o.spec {
            return std::fs::read(file).map_err(|e| Fail::Other(format!("--spec {file}: {e}")));
        }
        let from_bundle = self
            .bundle()
            .and_then(|b| std::fs::read(Path::new(&b).join("config.json")).ok())
            .and_then(|bytes| Value::parse(&bytes).ok())
            .and_then(|mut v| v.remove("process"))
            .filter(|p| p.as_object().is_some());
        spec::build_process(
            from_bundle,
            &self.o.words,
            &self.o.env,
            self.o.cwd.as_deref(),
            self.o.tty,
        )
    }

    fn exec(&self) -> Result<(), Fail> {
        let spec = Any {
            type_url: SPEC_TYPE_URL.to_owned(),
            value: self.exec_spec()?,
        };
        let [stdin, stdout, stderr] = self.stdio_paths()?;
        // Built once, whichever APIs are tried (the container id is set
        // for v3/v2); v1's is made from it.
        let mut req = task::ExecProcessRequest {
            id: String::new(),
            exec_id: self.o.positionals[0].clone(),
            terminal: self.o.tty,
            stdin,
            stdout,
            stderr,
            spec: Some(spec),
        };
        let attach = if self.o.attach {
            fn nz(s: &str) -> Option<&str> {
                (!s.is_empty()).then_some(s)
            }
            Some(Attach::open(
                nz(&req.stdin),
                nz(&req.stdout),
                nz(&req.stderr),
                self.o.tty,
            )?)
        } else {
            None
        };
        self.each(|api| {
            match api {
                Api::V1 => {
                    let req = v1::ExecProcessRequest {
                        id: req.exec_id.clone(),
                        terminal: req.terminal,
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        spec: req.spec.clone(),
                    };
                    self.v1().exec(&req, self.opts())?;
                }
                _ => {
                    req.id = self.cid()?;
                    self.task(api).exec(&req, self.opts())?
                }
            }
            Ok(())
        })?;
        let exec_id = req.exec_id;
        let cid = match self.api.get() {
            Some(Api::V1) => String::new(),
            _ => self.cid()?,
        };
        let pid = self.start_process(&cid, &exec_id)?;
        println!("exec running with pid {pid}");
        if let Some(attach) = attach {
            let resize = || self.follow_size(&cid, &exec_id);
            // SIGWINCH resizes; the others restore the terminal and exit
            // 128+signal.
            let on_signal = |sig: nix::sys::signal::Signal| {
                if sig == nix::sys::signal::Signal::SIGWINCH {
                    resize();
                } else {
                    stdio::restore_terminal();
                    std::process::exit(128 + sig as i32);
                }
            };
            let mut signals = None;
            if self.o.tty && nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
                stdio::raw_mode()?;
                resize();
                signals = self
                    .signals
                    .as_ref()
                    .map(|s| (s, &on_signal as &dyn Fn(nix::sys::signal::Signal)));
            }
            attach.run(&|| self.close_stdin(&cid, &exec_id), signals);
        }
        Ok(())
    }

    /// CloseIO for an attached exec's stdin, once ours has ended.
    fn close_stdin(&self, cid: &str, exec_id: &str) {
        let api = self.api.get().unwrap_or(Api::V2);
        let _ = match api {
            Api::V1 => {
                let req = v1::CloseIoRequest {
                    id: exec_id.to_owned(),
                    stdin: true,
                };
                self.v1().close_io(&req, self.opts())
            }
            _ => {
                let req = task::CloseIoRequest {
                    id: cid.to_owned(),
                    exec_id: exec_id.to_owned(),
                    stdin: true,
                };
                self.task(api).close_io(&req, self.opts())
            }
        };
    }

    /// Sends our terminal's size to the process's pty.
    fn follow_size(&self, cid: &str, exec_id: &str) {
        let Some((w, h)) = crate::sys::window_size(std::io::stdin()) else {
            return;
        };
        let api = self.api.get().unwrap_or(Api::V2);
        let _ = resize_call(
            &self.conn,
            api,
            self.opts(),
            cid,
            exec_id,
            u32::from(w),
            u32::from(h),
        );
    }

    fn resize(&self, width: u32, height: u32) -> Result<(), Fail> {
        let cid = if self.o.api == ApiSel::V1 {
            String::new()
        } else {
            self.cid()?
        };
        self.each(|api| {
            let (id, eid) = if api == Api::V1 {
                (String::new(), self.v1_id()?)
            } else {
                (cid.clone(), self.eid())
            };
            resize_call(&self.conn, api, self.opts(), &id, &eid, width, height)
        })
    }

    fn kill(&self) -> Result<(), Fail> {
        let signal = parse_signal(self.o.signal.as_deref().unwrap_or("SIGTERM"))?;
        self.each(|api| {
            match api {
                Api::V1 => {
                    let req = v1::KillRequest {
                        id: self.v1_id()?,
                        signal,
                        all: self.o.all,
                    };
                    self.v1().kill(&req, self.opts())?;
                }
                _ => {
                    let req = task::KillRequest {
                        id: self.cid()?,
                        exec_id: self.eid(),
                        signal,
                        all: self.o.all,
                    };
                    self.task(api).kill(&req, self.opts())?
                }
            }
            Ok(())
        })
    }

    fn wait(&self) -> Result<(), Fail> {
        let opts = CallOptions {
            timeout: self.o.timeout,
            ..CallOptions::default()
        };
        let (status, at) = self.each(|api| {
            Ok(match api {
                Api::V1 => {
                    let req = v1::WaitRequest { id: self.v1_id()? };
                    let r = self.v1().wait(&req, &opts)?;
                    (r.exit_status, r.exited_at)
                }
                _ => {
                    let req = task::WaitRequest {
                        id: self.cid()?,
                        exec_id: self.eid(),
                    };
                    let r = self.task(api).wait(&req, &opts)?;
                    (r.exit_status, r.exited_at)
                }
            })
        })?;
        println!(
            "exit status {status} at {}",
            at.unwrap_or(Timestamp::GO_ZERO).rfc3339()
        );
        Ok(())
    }

    fn pause(&self, pause: bool) -> Result<(), Fail> {
        self.each(|api| {
            match (api, pause) {
                (Api::V1, true) => self.v1().pause(&(), self.opts())?,
                (Api::V1, false) => self.v1().resume(&(), self.opts())?,
                (_, true) => self
                    .task(api)
                    .pause(&task::PauseRequest { id: self.cid()? }, self.opts())?,
                (_, false) => self
                    .task(api)
                    .resume(&task::ResumeRequest { id: self.cid()? }, self.opts())?,
            }
            Ok(())
        })
    }

    fn close_io(&self) -> Result<(), Fail> {
        self.each(|api| {
            match api {
                Api::V1 => {
                    let req = v1::CloseIoRequest {
                        id: self.v1_id()?,
                        stdin: self.o.close_stdin,
                    };
                    self.v1().close_io(&req, self.opts())?;
                }
                _ => {
                    let req = task::CloseIoRequest {
                        id: self.cid()?,
                        exec_id: self.eid(),
                        stdin: self.o.close_stdin,
                    };
                    self.task(api).close_io(&req, self.opts())?
                }
            }
            Ok(())
        })
    }

    fn shutdown(&self) -> Result<(), Fail> {
        self.each(|api| {
            match api {
                Api::V1 => {
                    let info = self.v1().shim_info(&(), self.opts())?;
                    let pid = i32::try_from(info.shim_pid)
                        .ok()
                        .filter(|p| *p > 1)
                        .ok_or_else(|| {
                            Fail::Other(format!("ShimInfo: bad shim pid {}", info.shim_pid))
                        })?;
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    )
                    .map_err(|e| Fail::Other(format!("kill shim pid {pid}: {e}")))?;
                }
                _ => {
                    let req = task::ShutdownRequest {
                        id: self.cid()?,
                        now: self.o.now,
                    };
                    let r = self.task(api).shutdown(&req, self.opts());
                    match r {
                        // The shim may exit before its answer is read.
                        Err(ttrpc_std::Error::Closed(_)) => {}
                        other => other?,
                    }
                }
            }
            Ok(())
        })
    }
}

fn resize_call(
    client: &Conn,
    api: Api,
    opts: &CallOptions,
    id: &str,
    exec_id: &str,
    width: u32,
    height: u32,
) -> Result<(), Fail> {
    match api {
        Api::V1 => {
            let req = v1::ResizePtyRequest {
                id: exec_id.to_owned(),
                width,
                height,
            };
            v1::ShimClient::new(client).resize_pty(&req, opts)?;
        }
        _ => {
            let req = task::ResizePtyRequest {
                id: id.to_owned(),
                exec_id: exec_id.to_owned(),
                width,
                height,
            };
            task::TaskClient::with_service(client, api.service()).resize_pty(&req, opts)?;
        }
    }
    Ok(())
}

/// `SIGTERM`, `TERM`, `sigterm` or `15`.
pub(crate) fn parse_signal(s: &str) -> Result<u32, Fail> {
    if let Ok(n) = s.parse::<u32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Fail::Usage(format!("--signal: no signal {n}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as u32)
        .map_err(|_| Fail::Usage(format!("--signal: unknown signal {s:?}")))
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

impl Opts {
    /// The container id: positional (start/state/delete take one) or `--id`.
    pub(crate) fn positionals_id(&self) -> Option<String> {
        match self.cmd {
            Cmd::Start | Cmd::State | Cmd::Delete => self.positionals.first().cloned(),
            _ => None,
        }
        .or_else(|| self.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filepath_join_like_go() {
        assert_eq!(
            join(&["/run/containerd/containerd.sock", "probe", "pc1"]),
            "/run/containerd/containerd.sock/probe/pc1"
        );
        assert_eq!(join(&["/a/", "/b//", "c"]), "/a/b/c");
        assert_eq!(join(&["a", "..", "b"]), "b");
        assert_eq!(join(&["/a", "../../x"]), "/x");
        assert_eq!(join(&["", "", ""]), "");
        assert_eq!(join(&["", "ns", "id"]), "ns/id");
        assert_eq!(join(&["./s", "ns", "id/"]), "s/ns/id");
    }

    #[test]
    fn derived_socket_matches_observed_ctr() {
        // protocol.md §7: sha256("/run/containerd/containerd.sock/probe/pc1") = 1e10bc15…3153.
        let a = derived_addresses("/run/containerd/containerd.sock", "probe", "pc1");
        let Address::Path(p) = &a[0] else { panic!() };
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("1e10bc15") && name.ends_with("3153"),
            "{name}"
        );
        assert_eq!(
            a[1],
            Address::LegacyAbstract("/containerd-shim/probe/pc1/shim.sock".into())
        );
        assert_eq!(
            a[1].abstract_name().unwrap(),
            b"/containerd-shim/probe/pc1/shim.sock\0"
        );
    }

    #[test]
    fn signals() {
        for s in ["SIGTERM", "TERM", "term", "15"] {
            assert_eq!(parse_signal(s).unwrap(), 15, "{s}");
        }
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }
}
