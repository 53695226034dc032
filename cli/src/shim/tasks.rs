//! The built-in shim's tasks: containers (an init process and its execs),
//! their states, and the runc shim's rules and messages for each
//! transition. Pure bookkeeping plus signals; the event loop owns the
//! descriptors that need polling (terminal pumps) and the reaping.

use std::fs::File;
use std::os::fd::OwnedFd;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use ttrpc_core::stub::Reply;
use ttrpc_core::{Code, Status};

use super::spawn::{Held, StdioPaths};
use crate::proto::task::WaitResponse;
use crate::wkt::Timestamp;

/// A process's state, as the runc shim names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

impl State {
    /// `containerd.v1.types.Status`.
    pub(super) fn wire(self) -> i32 {
        match self {
            Self::Created => 1,
            Self::Running => 2,
            Self::Stopped => 3,
            Self::Paused => 4,
        }
    }
}

/// One process: the init process of a container or an exec.
pub(super) struct Process {
    pub(super) pid: u32,
    pub(super) state: State,
    pub(super) io: StdioPaths,
    pub(super) exit: Option<(u32, Timestamp)>,
    /// Wait calls parked until the process exits.
    pub(super) waiters: Vec<Reply<WaitResponse>>,
    /// Present until Start.
    pub(super) held: Option<Held>,
    /// Keeps a stdin fifo open until CloseIO.
    pub(super) stdin_keeper: Option<File>,
    /// The pty master, for ResizePty.
    pub(super) pty: Option<OwnedFd>,
    /// The loop's pump slots for this process's terminal.
    pub(super) pumps: Vec<usize>,
}

impl Process {
    pub(super) fn new(pid: u32, io: StdioPaths, held: Held) -> Self {
        Self {
            pid,
            state: State::Created,
            io,
            exit: None,
            waiters: Vec::new(),
            held: Some(held),
            stdin_keeper: None,
            pty: None,
            pumps: Vec::new(),
        }
    }

    pub(super) fn exit_status(&self) -> u32 {
        self.exit.map_or(0, |e| e.0)
    }

    pub(super) fn exited_at(&self) -> Timestamp {
        self.exit.map_or(Timestamp::GO_ZERO, |e| e.1)
    }

    /// Signals the process's group (each process leads its own session);
    /// the process alone if the group is gone.
    pub(super) fn signal(&self, sig: Signal) -> nix::Result<()> {
        let pid = pid_of(self.pid);
        killpg(pid, sig).or_else(|_| nix::sys::signal::kill(pid, sig))
    }
}

/// A container: its bundle, its init process and its execs.
pub(super) struct Container {
    pub(super) bundle: String,
    pub(super) init: Process,
    pub(super) execs: ById<Process>,
}

impl Container {
    /// `Container.Process`: the init process for `""`, else an exec.
    pub(super) fn process(&self, exec_id: &str) -> Result<&Process, Status> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs.get(exec_id).ok_or_else(|| no_process(exec_id))
    }

    pub(super) fn process_mut(&mut self, exec_id: &str) -> Result<&mut Process, Status> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .ok_or_else(|| no_process(exec_id))
    }

    /// Every process, init first.
    pub(super) fn all(&self) -> impl Iterator<Item = &Process> {
        std::iter::once(&self.init).chain(self.execs.values())
    }

    pub(super) fn all_mut(&mut self) -> impl Iterator<Item = &mut Process> {
        std::iter::once(&mut self.init).chain(self.execs.values_mut())
    }
}

fn no_process(exec_id: &str) -> Status {
    Status::new(Code::NotFound, format!("process does not exist {exec_id}"))
}

/// `errdefs.ToGRPC` of an error without a class: `Unknown`.
pub(super) fn unknown(msg: impl Into<String>) -> Status {
    Status::new(Code::Unknown, msg)
}

/// A transition [`refuse`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Start,
    Delete,
    Pause,
    Resume,
    Exec,
    Resize,
}

/// The runc shim's answer for a transition the state does not allow, or
/// `None` if it is allowed. `init` distinguishes init from exec processes
/// where their messages differ.
pub(super) fn refuse(op: Op, state: State, init: bool) -> Option<Status> {
    use State::{Created, Paused, Running, Stopped};
    let msg = match (op, state) {
        (Op::Start, Running) => "cannot start a running process",
        (Op::Start, Stopped) => "cannot start a stopped process",
        (Op::Start, Paused) => "cannot start a paused process",
        (Op::Delete, Running) => "cannot delete a running process",
        (Op::Delete, Paused) => "cannot delete a paused process",
        (Op::Pause, Created) if init => "cannot pause task in created state",
        (Op::Pause, Paused) => "cannot pause a paused container",
        (Op::Pause, Stopped) => "cannot pause a stopped container",
        (Op::Resume, Created) if init => "cannot resume task in created state",
        (Op::Resume, Running) => "cannot resume a running process",
        (Op::Resume, Stopped) => "cannot resume a stopped container",
        (Op::Exec, Created) => "cannot exec in a created state",
        (Op::Exec, Paused) => "cannot exec in a paused state",
        (Op::Exec, Stopped) => "cannot exec in a stopped state",
        (Op::Resize, Stopped) if !init => "cannot resize a stopped container",
        _ => return None,
    };
    Some(unknown(msg))
}

/// Containers or execs by id, in id order: a `Vec` kept sorted. A shim
/// holds a handful, and a `BTreeMap` cost the static binary several KiB of
/// node code for each value type (ttrpc-core's maps are sorted `Vec`s for
/// the same reason).
pub(super) struct ById<V>(Vec<(String, V)>);

impl<V> Default for ById<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> ById<V> {
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    pub(super) fn get(&self, id: &str) -> Option<&V> {
        self.find(id).ok().map(|i| &self.0[i].1)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut V> {
        self.find(id).ok().map(|i| &mut self.0[i].1)
    }

    pub(super) fn contains_key(&self, id: &str) -> bool {
        self.find(id).is_ok()
    }

    /// Inserts or replaces.
    pub(super) fn insert(&mut self, id: String, value: V) {
        match self.find(&id) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (id, value)),
        }
    }

    pub(super) fn remove(&mut self, id: &str) -> Option<V> {
        self.find(id).ok().map(|i| self.0.remove(i).1)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (id, value) in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

/// Everything the shim serves.
#[derive(Default)]
pub(super) struct Tasks {
    pub(super) containers: ById<Container>,
}

impl Tasks {
    /// `getContainer`.
    pub(super) fn container(&self, id: &str) -> Result<&Container, Status> {
        self.containers.get(id).ok_or_else(not_created)
    }

    pub(super) fn container_mut(&mut self, id: &str) -> Result<&mut Container, Status> {
        self.containers.get_mut(id).ok_or_else(not_created)
    }

    /// Records an exit reaped by the loop, adding the parked Wait calls to
    /// answer to `answers`. An init's exit ends its container's execs, as
    /// in a container.
    pub(super) fn exited(
        &mut self,
        pid: u32,
        status: u32,
        at: Timestamp,
        answers: &mut Vec<(Reply<WaitResponse>, WaitResponse)>,
    ) {
        for c in self.containers.values_mut() {
            let init_died = c.init.pid == pid && c.init.exit.is_none();
            for p in c.all_mut() {
                if p.pid == pid && p.exit.is_none() {
                    p.exit = Some((status, at));
                    p.state = State::Stopped;
                    let resp = WaitResponse {
                        exit_status: status,
                        exited_at: Some(at),
                    };
                    answers.extend(p.waiters.drain(..).map(|w| (w, resp)));
                }
            }
            if init_died {
                // As in a container: nothing outlives its init — what is
                // left of its process group, and the execs.
                let _ = killpg(pid_of(pid), Signal::SIGKILL);
                for e in c.execs.values().filter(|e| e.exit.is_none()) {
                    let _ = e.signal(Signal::SIGKILL);
                }
            }
        }
    }

    /// Every live process of every container, for pid listing and for
    /// killing everything at exit.
    pub(super) fn live(&self) -> impl Iterator<Item = &Process> {
        self.containers
            .values()
            .flat_map(Container::all)
            .filter(|p| p.exit.is_none())
    }

    /// `SIGKILL` to every live process (shutdown `now`, SIGTERM/SIGINT).
    pub(super) fn kill_everything(&self) {
        for p in self.live() {
            let _ = p.signal(Signal::SIGKILL);
        }
    }
}

fn not_created() -> Status {
    Status::new(Code::NotFound, "container not created")
}

/// The pids of `roots` and all their descendants, read from `/proc`
/// (host processes have no cgroup of their own to list).
pub(super) fn descendants(roots: &[u32]) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parens.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_ascii_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out: Vec<u32> = roots.to_vec();
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for (pid, _) in parent_of.iter().filter(|(_, pp)| *pp == parent) {
            if !out.contains(pid) {
                out.push(*pid);
            }
        }
        i += 1;
    }
    out
}

/// A pid from the wire's `u32`.
pub(super) fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// Now, as a protobuf timestamp.
pub(super) fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_refused_with_runc_messages() {
        assert_eq!(refuse(Op::Start, State::Created, true), None);
        let s = refuse(Op::Start, State::Running, true).unwrap();
        assert_eq!(
            (s.code, s.message.as_str()),
            (Code::Unknown, "cannot start a running process")
        );
        assert!(refuse(Op::Pause, State::Created, false).is_none());
        assert!(refuse(Op::Pause, State::Created, true).is_some());
        assert!(refuse(Op::Delete, State::Stopped, true).is_none());
        assert!(refuse(Op::Delete, State::Created, true).is_none());
    }

    #[test]
    fn by_id_keeps_id_order() {
        let mut m = ById::default();
        for id in ["b", "c", "a"] {
            m.insert(id.to_owned(), 1);
        }
        m.insert("b".to_owned(), 7);
        let all: Vec<(&str, i32)> = m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(all, [("a", 1), ("b", 7), ("c", 1)]);
        assert_eq!(m.remove("b"), Some(7));
        assert!(!m.contains_key("b") && m.get("c") == Some(&1) && m.len() == 2);
    }

    #[test]
    fn descendants_include_children() {
        let me = std::process::id();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let all = descendants(&[me]);
        assert_eq!(all[0], me);
        assert!(all.contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
