//! The task API (`containerd.task.v2.Task`, and the same handlers under
//! `containerd.task.v3.Task`) over [`Tasks`]. Handlers run on the loop
//! thread and never block it: Wait parks its reply until the loop reaps
//! the process.

use std::sync::{Mutex, MutexGuard, PoisonError};

use nix::sys::signal::Signal;
use prost::Message as _;
use ttrpc_core::stub::Reply;
use ttrpc_core::{Code, IncomingRequest, Status};

use super::oci::ProcessSpec;
use super::pump::Pump;
use super::spawn::{self, StdioPaths};
use super::tasks::{self, Container, Op, Process, State, Tasks, refuse, unknown};
use crate::proto::containerd::runc::v1::ProcessDetails;
use crate::proto::containerd::v1::types::ProcessInfo;
use crate::proto::task;
use crate::wkt::Any;

/// Why the loop should stop serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// Shutdown with no task left: reply, then exit.
    Shutdown,
    /// Shutdown `now`, or a signal: kill everything, then exit.
    Now,
}

/// Loop-owned state the handlers reach: the tasks, the terminal pumps
/// (registered on the loop's `Poll`), and an exit request.
pub(super) struct Inner {
    pub(super) tasks: Tasks,
    pub(super) pumps: Vec<Option<Pump>>,
    pub(super) registry: mio::Registry,
    pub(super) exit: Option<Exit>,
}

/// The first pump token; pump `i` owns `PUMP_TOKENS + 2i` and the next.
pub(super) const PUMP_TOKENS: usize = 1;
/// Pumps at most (two tokens each, below the server's range).
pub(super) const MAX_PUMPS: usize = 1 << 18;

impl Inner {
    fn add_pump(&mut self, src: std::fs::File, dst: std::fs::File) -> Result<usize, Status> {
        let slot = match self.pumps.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.pumps.len() < MAX_PUMPS => {
                self.pumps.push(None);
                self.pumps.len() - 1
            }
            None => return Err(Status::new(Code::ResourceExhausted, "too many terminals")),
        };
        let token = mio::Token(PUMP_TOKENS + 2 * slot);
        let mut pump = Pump::new(src, dst, &self.registry, token)
            .map_err(|e| unknown(format!("failed to start console copy: {e}")))?;
        // Data may already be waiting (edge-triggered: no event for it).
        if pump.drive() == super::pump::Progress::Done {
            pump.deregister(&self.registry);
            return Ok(slot);
        }
        self.pumps[slot] = Some(pump);
        Ok(slot)
    }

    /// Drops a process's pumps and descriptors (Delete).
    fn release(&mut self, p: &Process) {
        for &slot in &p.pumps {
            if let Some(pump) = self.pumps.get_mut(slot).and_then(Option::take) {
                pump.deregister(&self.registry);
            }
        }
    }
}

/// The built-in shim's task service.
pub(super) struct Shim {
    pub(super) inner: Mutex<Inner>,
    /// Test hook (`SHIMCTL_TEST_PANIC=METHOD`): that handler panics, to
    /// prove a release build answers `Internal` and keeps serving.
    pub(super) panic_on: Option<String>,
}

impl Shim {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn test_panic(&self, method: &str) {
        if self.panic_on.as_deref() == Some(method) {
            panic!("SHIMCTL_TEST_PANIC={method}");
        }
    }

    /// Forks the process of a Create or Exec, with its terminal pumps.
    fn spawn(inner: &mut Inner, spec: &ProcessSpec, io: StdioPaths) -> Result<Process, Status> {
        let spawned = spawn::spawn(spec, &io).map_err(|e| unknown(e.0))?;
        let mut p = Process::new(spawned.held.pid, io, spawned.held);
        p.stdin_keeper = spawned.stdin_keeper;
        if let Some(master) = spawned.pty {
            let dup = |fd: &std::os::fd::OwnedFd| {
                fd.try_clone()
                    .map(std::fs::File::from)
                    .map_err(|e| unknown(format!("failed to start console copy: {e}")))
            };
            let out_src = dup(&master)?;
            spawn::set_nonblocking(&out_src, true).map_err(|e| unknown(e.0))?;
            let out = spawn::open_output(&p.io.stdout, true).map_err(|e| unknown(e.0))?;
            p.pumps.push(inner.add_pump(out_src, out)?);
            if let Some(input) = spawned.tty_input {
                let in_dst = dup(&master)?;
                p.pumps.push(inner.add_pump(input, in_dst)?);
            }
            p.pty = Some(master);
        }
        Ok(p)
    }
}

/// The most of a `config.json` the shim reads (on its loop): a spec that
/// large is not one.
const MAX_CONFIG: u64 = 4 << 20;

fn read_config(path: &std::path::Path) -> Result<Vec<u8>, Status> {
    use std::io::Read as _;
    let fail =
        |e: &std::io::Error| unknown(format!("open {}: {}", path.display(), spawn::io_message(e)));
    let mut file = std::fs::File::open(path).map_err(|e| fail(&e))?;
    // Read by hand: a `Take<File>` would bring its own copy of std's
    // read_to_end into the binary.
    let mut bytes = Vec::new();
    let mut chunk = [0; 16 * 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(&e)),
        }
        if bytes.len() as u64 > MAX_CONFIG {
            return Err(unknown(format!(
                "{}: larger than {MAX_CONFIG} bytes",
                path.display()
            )));
        }
    }
}

fn exec_spec(any: Option<&Any>) -> Result<ProcessSpec, Status> {
    let any =
        any.ok_or_else(|| Status::new(Code::InvalidArgument, "exec: a process spec is required"))?;
    ProcessSpec::from_exec(&any.value).map_err(|e| Status::new(Code::InvalidArgument, e))
}

impl task::Task for Shim {
    fn state(&self, _: &IncomingRequest, r: task::StateRequest, reply: Reply<task::StateResponse>) {
        self.test_panic("State");
        let inner = self.lock();
        reply.send((|| {
            let c = inner.tasks.container(&r.id)?;
            let p = c.process(&r.exec_id)?;
            Ok(task::StateResponse {
                id: if r.exec_id.is_empty() {
                    r.id
                } else {
                    r.exec_id
                },
                bundle: c.bundle.clone(),
                pid: p.pid,
                status: p.state.wire(),
                stdin: p.io.stdin.clone(),
                stdout: p.io.stdout.clone(),
                stderr: p.io.stderr.clone(),
                terminal: p.io.terminal,
                exit_status: p.exit_status(),
                exited_at: Some(p.exited_at()),
                exec_id: String::new(),
            })
        })());
    }

    fn create(
        &self,
        _: &IncomingRequest,
        r: task::CreateTaskRequest,
        reply: Reply<task::CreateTaskResponse>,
    ) {
        let mut inner = self.lock();
        reply.send((|| {
            if inner.tasks.containers.contains_key(&r.id) {
                return Err(Status::new(
                    Code::AlreadyExists,
                    format!("container {} already exists", r.id),
                ));
            }
            let path = std::path::Path::new(&r.bundle).join("config.json");
            let bytes = read_config(&path)?;
            let spec = ProcessSpec::from_config(&bytes).map_err(unknown)?;
            let io = StdioPaths {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                terminal: r.terminal,
            };
            let init = Self::spawn(&mut inner, &spec, io)?;
            let pid = init.pid;
            inner.tasks.containers.insert(
                r.id,
                Container {
                    bundle: r.bundle,
                    init,
                    execs: Default::default(),
                },
            );
            Ok(task::CreateTaskResponse { pid })
        })());
    }

    fn start(&self, _: &IncomingRequest, r: task::StartRequest, reply: Reply<task::StartResponse>) {
        let mut inner = self.lock();
        reply.send((|| {
            let p = inner.tasks.container_mut(&r.id)?.process_mut(&r.exec_id)?;
            if let Some(e) = refuse(Op::Start, p.state, r.exec_id.is_empty()) {
                return Err(e);
            }
            let held = p
                .held
                .take()
                .ok_or_else(|| unknown("process already started"))?;
            held.start().map_err(|e| unknown(e.0))?;
            p.state = State::Running;
            Ok(task::StartResponse { pid: p.pid })
        })());
    }

    fn delete(
        &self,
        _: &IncomingRequest,
        r: task::DeleteRequest,
        reply: Reply<task::DeleteResponse>,
    ) {
        let mut inner = self.lock();
        reply.send((|| {
            let c = inner.tasks.container_mut(&r.id)?;
            let p = c.process_mut(&r.exec_id)?;
            if let Some(e) = refuse(Op::Delete, p.state, r.exec_id.is_empty()) {
                return Err(e);
            }
            if p.state == State::Created {
                // Never started: end the held child and reap it here.
                p.held = None;
                let pid = tasks::pid_of(p.pid);
                let status = match nix::sys::wait::waitpid(pid, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code as u32,
                    _ => 137,
                };
                p.exit = Some((status, tasks::now()));
                p.state = State::Stopped;
            }
            let resp = task::DeleteResponse {
                pid: p.pid,
                exit_status: p.exit_status(),
                exited_at: Some(p.exited_at()),
            };
            if r.exec_id.is_empty() {
                let c = inner
                    .tasks
                    .containers
                    .remove(&r.id)
                    .ok_or_else(|| unknown("gone"))?;
                for e in c.execs.values().filter(|e| e.exit.is_none()) {
                    let _ = e.signal(Signal::SIGKILL);
                }
                for p in c.all() {
                    inner.release(p);
                }
            } else if let Some(p) = c.execs.remove(&r.exec_id) {
                inner.release(&p);
            }
            Ok(resp)
        })());
    }

    fn pids(&self, _: &IncomingRequest, r: task::PidsRequest, reply: Reply<task::PidsResponse>) {
        let inner = self.lock();
        reply.send((|| {
            let c = inner.tasks.container(&r.id)?;
            let roots: Vec<u32> = c
                .all()
                .filter(|p| p.exit.is_none())
                .map(|p| p.pid)
                .collect();
            let processes = tasks::descendants(&roots)
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid,
                    info: c
                        .execs
                        .iter()
                        .find(|(_, p)| p.pid == pid)
                        .map(|(id, _)| Any {
                            type_url: "containerd.runc.v1.ProcessDetails".to_owned(),
                            value: ProcessDetails {
                                exec_id: id.clone(),
                            }
                            .encode_to_vec(),
                        }),
                })
                .collect();
            Ok(task::PidsResponse { processes })
        })());
    }

    fn pause(&self, _: &IncomingRequest, r: task::PauseRequest, reply: Reply<()>) {
        reply.send(self.freeze(&r.id, true));
    }

    fn resume(&self, _: &IncomingRequest, r: task::ResumeRequest, reply: Reply<()>) {
        reply.send(self.freeze(&r.id, false));
    }

    fn kill(&self, _: &IncomingRequest, r: task::KillRequest, reply: Reply<()>) {
        let inner = self.lock();
        reply.send((|| {
            let c = inner.tasks.container(&r.id)?;
            let p = c.process(&r.exec_id)?;
            if p.exit.is_some() {
                return Err(Status::new(Code::NotFound, "process already finished"));
            }
            let sig = i32::try_from(r.signal)
                .ok()
                .and_then(|s| Signal::try_from(s).ok())
                .ok_or_else(|| {
                    Status::new(
                        Code::InvalidArgument,
                        format!("invalid signal {}", r.signal),
                    )
                })?;
            let signal = |t: &Process| {
                t.signal(sig)
                    .map_err(|e| unknown(format!("unknown error after kill: {e}")))
            };
            if r.all && r.exec_id.is_empty() {
                c.all().filter(|p| p.exit.is_none()).try_for_each(signal)
            } else {
                signal(p)
            }
        })());
    }

    fn exec(&self, _: &IncomingRequest, r: task::ExecProcessRequest, reply: Reply<()>) {
        let mut inner = self.lock();
        reply.send((|| {
            let c = inner.tasks.container(&r.id)?;
            if let Some(e) = refuse(Op::Exec, c.init.state, true) {
                return Err(e);
            }
            if r.exec_id.is_empty() || c.execs.contains_key(&r.exec_id) {
                return Err(Status::new(
                    Code::AlreadyExists,
                    format!("id {}", r.exec_id),
                ));
            }
            let spec = exec_spec(r.spec.as_ref())?;
            let io = StdioPaths {
                stdin: r.stdin,
                stdout: r.stdout,
                stderr: r.stderr,
                terminal: r.terminal,
            };
            let p = Self::spawn(&mut inner, &spec, io)?;
            inner.tasks.container_mut(&r.id)?.execs.insert(r.exec_id, p);
            Ok(())
        })());
    }

    fn resize_pty(&self, _: &IncomingRequest, r: task::ResizePtyRequest, reply: Reply<()>) {
        let inner = self.lock();
        reply.send((|| {
            let p = inner.tasks.container(&r.id)?.process(&r.exec_id)?;
            if let Some(e) = refuse(Op::Resize, p.state, r.exec_id.is_empty()) {
                return Err(e);
            }
            if let Some(pty) = &p.pty {
                let dim = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
                crate::sys::set_window_size(pty, dim(r.width), dim(r.height))
                    .map_err(|e| unknown(format!("resize pty: {e}")))?;
            }
            Ok(())
        })());
    }

    fn close_io(&self, _: &IncomingRequest, r: task::CloseIoRequest, reply: Reply<()>) {
        let mut inner = self.lock();
        reply.send((|| {
            let p = inner.tasks.container_mut(&r.id)?.process_mut(&r.exec_id)?;
            // As runc's shim: stdin is closed whatever the flag says.
            p.stdin_keeper = None;
            Ok(())
        })());
    }

    fn wait(&self, _: &IncomingRequest, r: task::WaitRequest, reply: Reply<task::WaitResponse>) {
        let mut inner = self.lock();
        let p = match inner
            .tasks
            .container_mut(&r.id)
            .and_then(|c| c.process_mut(&r.exec_id))
        {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        match p.exit {
            Some((status, at)) => reply.ok(&task::WaitResponse {
                exit_status: status,
                exited_at: Some(at),
            }),
            None => p.waiters.push(reply),
        }
    }

    fn connect(
        &self,
        _: &IncomingRequest,
        r: task::ConnectRequest,
        reply: Reply<task::ConnectResponse>,
    ) {
        self.test_panic("Connect");
        let inner = self.lock();
        reply.ok(&task::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: inner.tasks.container(&r.id).map_or(0, |c| c.init.pid),
            version: String::new(),
        });
    }

    fn shutdown(&self, _: &IncomingRequest, r: task::ShutdownRequest, reply: Reply<()>) {
        let mut inner = self.lock();
        if r.now {
            inner.tasks.kill_everything();
            inner.exit = Some(Exit::Now);
        } else if inner.tasks.containers.is_empty() {
            inner.exit.get_or_insert(Exit::Shutdown);
        }
        reply.ok(&());
    }
}

impl Shim {
    /// Pause (SIGSTOP) or resume (SIGCONT) every started process.
    fn freeze(&self, id: &str, pause: bool) -> Result<(), Status> {
        let mut inner = self.lock();
        let c = inner.tasks.container_mut(id)?;
        let (op, sig, to) = if pause {
            (Op::Pause, Signal::SIGSTOP, State::Paused)
        } else {
            (Op::Resume, Signal::SIGCONT, State::Running)
        };
        if let Some(e) = refuse(op, c.init.state, true) {
            return Err(e);
        }
        for p in c
            .all_mut()
            .filter(|p| matches!(p.state, State::Running | State::Paused))
        {
            let _ = p.signal(sig);
            p.state = to;
        }
        Ok(())
    }
}
