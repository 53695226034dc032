//! The built-in shim: `shimctl serve` driven by `shimctl` itself and by
//! Debian containerd's `ctr shim`, and `shimctl run` end to end. Host
//! processes: nothing here needs root except the `ctr` and runc-v2 cases
//! (SKIP without them unless `TTRPC_REQUIRE_PEERS=1`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ttrpc_shimkit::{TempDir, make_bundle, missing, pids_with_args, skip, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shimctl");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shimctl_in(bin: &str, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(bin)
        .args(args)
        .env_remove("CONTAINERD_NAMESPACE")
        .stdin(Stdio::null())
        .output()
        .expect("run shimctl");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `shimctl --socket S --id ID --timeout 5s ARGS`.
fn call(socket: &str, id: &str, args: &[&str]) -> Run {
    let mut all = vec!["--socket", socket, "--id", id, "--timeout", "5s"];
    all.extend_from_slice(args);
    shimctl_in(BIN, &all)
}

#[track_caller]
fn ok(socket: &str, id: &str, args: &[&str]) -> String {
    let r = call(socket, id, args);
    assert_eq!(r.code, 0, "shimctl {args:?}: {}{}", r.stdout, r.stderr);
    r.stdout
}

#[track_caller]
fn refused(socket: &str, id: &str, args: &[&str], expect: &str) {
    let r = call(socket, id, args);
    assert_eq!(
        r.code, 1,
        "shimctl {args:?} should fail: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains(expect),
        "shimctl {args:?}: {:?} lacks {expect:?}",
        r.stderr
    );
}

/// A foreground `shimctl serve` on a socket in a temp dir; SIGTERM on drop.
struct Serve {
    child: Child,
    socket: String,
    path: PathBuf,
    dir: TempDir,
}

impl Serve {
    fn start_with(bin: &str, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("shimctl-serve").expect("temp dir");
        let path = dir.path().join("shim.sock");
        let socket = format!("unix://{}", path.display());
        let child = Command::new(bin)
            .args(["serve", "--socket", &socket])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("start serve");
        assert!(
            wait_until(Duration::from_secs(10), || path.exists()),
            "serve did not listen"
        );
        Self {
            child,
            socket,
            path,
            dir,
        }
    }

    fn start() -> Self {
        Self::start_with(BIN, &[])
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes a bundle running `args` and returns its path.
    fn bundle(&self, name: &str, args: &[&str]) -> String {
        let b = self.dir.path().join(name);
        std::fs::create_dir(&b).unwrap();
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        let config = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},"process":{{"args":[{}],"env":["PATH=/usr/bin:/bin"],"cwd":"/"}},"linux":{{"namespaces":[{{"type":"pid"}}]}}}}"#,
            args.join(",")
        );
        std::fs::write(b.join("config.json"), config).unwrap();
        b.display().to_string()
    }

    fn file(&self, name: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::File::create(&p).unwrap();
        p.display().to_string()
    }

    fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(Iterator::count)
            .unwrap_or(0)
    }

    /// Children of the shim that are zombies.
    fn zombies(&self) -> Vec<u32> {
        children_of(self.pid())
            .into_iter()
            .filter(|(_, state)| *state == 'Z')
            .map(|(pid, _)| pid)
            .collect()
    }

    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// (pid, state) of each child of `parent`.
fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent) {
            out.push((pid, state));
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
}

fn json_field(text: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\": ");
    let start = text.find(&key)? + key.len();
    let rest = &text[start..];
    let end = rest.find([',', '\n']).unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"').to_owned())
}

#[test]
fn task_lifecycle_with_exec_tty_and_errors_as_runc() {
    let mut s = Serve::start();
    let sock = s.socket.clone();
    let sock = sock.as_str();
    let bundle = s.bundle("b", &["sh", "-c", "echo init-out; exec sleep 60"]);
    let out = s.file("out");

    refused(sock, "t", &["state"], "NotFound: container not created");
    let pid = ok(
        sock,
        "t",
        &["create", "--bundle", &bundle, "--stdout", &out],
    );
    let pid: u32 = pid.trim().parse().expect("create prints the pid");
    let st = ok(sock, "t", &["state"]);
    assert_eq!(json_field(&st, "status").as_deref(), Some("1"), "{st}");
    assert_eq!(json_field(&st, "pid"), Some(pid.to_string()));
    refused(
        sock,
        "t",
        &["exec", "e0", "--", "true"],
        "cannot exec in a created state",
    );
    assert_eq!(ok(sock, "t", &["start"]).trim(), pid.to_string());
    refused(
        sock,
        "t",
        &["start"],
        "Unknown: cannot start a running process",
    );
    refused(sock, "t", &["delete"], "cannot delete a running process");
    let st = ok(sock, "t", &["state"]);
    assert_eq!(json_field(&st, "status").as_deref(), Some("2"), "{st}");
    assert_eq!(
        json_field(&st, "exited_at").as_deref(),
        Some("0001-01-01T00:00:00Z")
    );

    // An exec without and one with a terminal.
    let eout = s.file("exec-out");
    ok(
        sock,
        "t",
        &[
            "exec",
            "e1",
            "--stdout",
            &eout,
            "--",
            "sh",
            "-c",
            "echo exec-out; exit 7",
        ],
    );
    refused(
        sock,
        "t",
        &["exec", "e1", "--", "true"],
        "AlreadyExists: id e1",
    );
    assert!(ok(sock, "t", &["wait", "--exec-id", "e1"]).starts_with("exit status 7 at "));
    let pids = ok(sock, "t", &["pids"]);
    assert!(pids.contains(&format!("\"pid\": {pid}")), "{pids}");
    assert!(ok(sock, "t", &["delete", "--exec-id", "e1"]).contains("exit status 7"));
    refused(
        sock,
        "t",
        &["state", "--exec-id", "e1"],
        "NotFound: process does not exist e1",
    );
    let tout = s.file("tty-out");
    let script = "tty; sleep 1; stty size";
    ok(
        sock,
        "t",
        &[
            "exec", "e2", "--tty", "--stdout", &tout, "--", "sh", "-c", script,
        ],
    );
    ok(
        sock,
        "t",
        &[
            "resize",
            "--exec-id",
            "e2",
            "--width",
            "100",
            "--height",
            "30",
        ],
    );
    assert!(ok(sock, "t", &["wait", "--exec-id", "e2"]).starts_with("exit status 0"));
    let tty_out = || std::fs::read_to_string(&tout).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || tty_out().contains("/dev/pts/")
            && tty_out().contains("30 100")),
        "tty output: {:?}",
        tty_out()
    );
    let resize = ["resize", "--exec-id", "e2", "--width", "1", "--height", "1"];
    refused(sock, "t", &resize, "cannot resize a stopped container");
    assert_eq!(std::fs::read_to_string(&eout).unwrap(), "exec-out\n");

    // Pause, resume, kill, wait, delete.
    ok(sock, "t", &["pause"]);
    let st = ok(sock, "t", &["state"]);
    assert_eq!(json_field(&st, "status").as_deref(), Some("4"), "{st}");
    refused(sock, "t", &["pause"], "cannot pause a paused container");
    ok(sock, "t", &["resume"]);
    ok(sock, "t", &["kill"]);
    assert!(ok(sock, "t", &["wait"]).starts_with("exit status 143 at "));
    refused(sock, "t", &["kill"], "NotFound: process already finished");
    assert!(!alive(pid), "init {pid} is still there");
    let conn = ok(sock, "t", &["connect"]);
    assert_eq!(json_field(&conn, "shim_pid"), Some(s.pid().to_string()));
    refused(sock, "t", &["stats"], "Unimplemented");
    assert_eq!(
        ok(sock, "t", &["delete"]).trim(),
        "container deleted and returned exit status 143"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "init-out\n");
    refused(sock, "t", &["state"], "container not created");

    // With no task left, Shutdown replies, removes the socket and exits 0.
    ok(sock, "t", &["shutdown"]);
    assert_eq!(s.exit_code(Duration::from_secs(5)), Some(0));
    assert!(!s.path.exists(), "socket file left behind");
}

#[test]
fn shutdown_keeps_serving_while_a_task_exists_and_now_kills_it() {
    let mut s = Serve::start();
    let sock = s.socket.clone();
    let bundle = s.bundle("b", &["sleep", "60"]);
    let pid: u32 = ok(&sock, "t", &["create", "--bundle", &bundle])
        .trim()
        .parse()
        .unwrap();
    ok(&sock, "t", &["start"]);
    ok(&sock, "t", &["shutdown"]);
    assert_eq!(
        s.exit_code(Duration::from_millis(300)),
        None,
        "exited with a task"
    );
    ok(&sock, "t", &["state"]);
    ok(&sock, "t", &["shutdown", "--now"]);
    assert_eq!(s.exit_code(Duration::from_secs(5)), Some(0));
    assert!(!alive(pid), "task {pid} survived shutdown --now");
    assert!(!s.path.exists());
}

#[test]
fn wait_is_parked_while_other_clients_are_served() {
    let s = Serve::start();
    let sock = s.socket.clone();
    let bundle = s.bundle("b", &["sleep", "60"]);
    ok(&sock, "t", &["create", "--bundle", &bundle]);
    ok(&sock, "t", &["start"]);
    let waiter = Command::new(BIN)
        .args(["--socket", &sock, "--id", "t", "wait"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..20 {
        let started = Instant::now();
        let st = ok(&sock, "t", &["state"]);
        assert_eq!(json_field(&st, "status").as_deref(), Some("2"));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "state was held up"
        );
    }
    ok(&sock, "t", &["kill", "--signal", "KILL"]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("exit status 137 at "));
    ok(&sock, "t", &["delete"]);
}

#[test]
fn hundred_tasks_leave_no_descriptor_or_zombie() {
    let s = Serve::start();
    let sock = s.socket.clone();
    let bundle = s.bundle("b", &["sh", "-c", "echo x; exit 2"]);
    let out = s.file("out");
    // One task first: lazily created state (buffers, epoll) is not a leak.
    let cycle = |id: &str| {
        ok(
            &sock,
            id,
            &[
                "create", "--bundle", &bundle, "--stdout", &out, "--stderr", &out,
            ],
        );
        ok(&sock, id, &["start"]);
        assert!(ok(&sock, id, &["wait"]).starts_with("exit status 2"));
        ok(&sock, id, &["delete"]);
    };
    cycle("warm");
    // The last client's connection may still be closing.
    std::thread::sleep(Duration::from_millis(300));
    let fds = s.fd_count();
    for i in 0..100 {
        cycle(&format!("t{i}"));
    }
    assert!(
        wait_until(Duration::from_secs(5), || s.fd_count() <= fds),
        "fds: {fds} before, {} after",
        s.fd_count()
    );
    assert_eq!(s.zombies(), Vec::<u32>::new());
    assert_eq!(std::fs::read_to_string(&out).unwrap().len(), 101 * 2);
}

#[test]
fn sigterm_kills_tasks_removes_socket_and_exits_zero() {
    let mut s = Serve::start();
    let sock = s.socket.clone();
    let bundle = s.bundle("b", &["sh", "-c", "sleep 60 & sleep 60"]);
    let pid: u32 = ok(&sock, "t", &["create", "--bundle", &bundle])
        .trim()
        .parse()
        .unwrap();
    ok(&sock, "t", &["start"]);
    let kids = wait_until(Duration::from_secs(5), || children_of(pid).len() == 2);
    assert!(kids, "sh did not start its children");
    let grandchildren: Vec<u32> = children_of(pid).into_iter().map(|c| c.0).collect();
    Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .unwrap();
    assert_eq!(s.exit_code(Duration::from_secs(5)), Some(0));
    assert!(!s.path.exists(), "socket file left behind");
    for p in std::iter::once(pid).chain(grandchildren) {
        assert!(
            wait_until(Duration::from_secs(2), || !alive(p)),
            "{p} survived"
        );
    }
}

#[test]
fn socket_is_private_to_its_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = Serve::start();
    let mode = std::fs::metadata(&s.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // `setpriv` as another user cannot even open it; with access to the
    // file, the credential check still refuses the peer.
    if missing(&["setpriv"]).is_none() {
        std::fs::set_permissions(&s.path, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args([
                "--socket",
                &s.socket,
                "--id",
                "t",
                "--timeout",
                "2s",
                "state",
            ])
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("container not created"),
            "served a stranger: {err}"
        );
    }
}

#[test]
fn ctr_shim_drives_serve_found_by_id() {
    if let Some(why) = missing(&["ctr"]) {
        return skip("ctr_shim_drives_serve_found_by_id", &why);
    }
    let ns = format!("shimctl-test-{}", std::process::id());
    let id = "ctr-serve";
    let tmp = TempDir::new("shimctl-ctr").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--daemon", "--id", id, "-n", &ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let address = String::from_utf8(out.stdout).unwrap();
    assert!(address.starts_with("unix:///run/containerd/s/") && !address.ends_with('\n'));
    let socket = address.trim_start_matches("unix://").to_owned();
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .args(["-n", &ns, "shim", "--id", id])
            .args(args)
            .output()
            .unwrap()
    };
    let before = ctr(&["state"]);
    assert!(!before.status.success());
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("NotFound desc = container not created"),
        "{before:?}"
    );
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(
        b.join("config.json"),
        r#"{"process":{"args":["sleep","60"],"env":["PATH=/bin:/usr/bin"],"cwd":"/"}}"#,
    )
    .unwrap();
    let mine = |args: &[&str]| {
        let mut all = vec!["-n", ns.as_str(), "--id", id, "--timeout", "5s"];
        all.extend_from_slice(args);
        shimctl_in(BIN, &all)
    };
    let created = mine(&["create", "--bundle", b.to_str().unwrap()]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let after = ctr(&["state"]);
    let text = String::from_utf8_lossy(&after.stdout);
    assert!(after.status.success(), "{after:?}");
    assert!(
        text.contains(&format!("\"id\": \"{id}\"")) && text.contains("\"status\": 1"),
        "{text}"
    );
    let started = ctr(&["start", id]);
    assert!(started.status.success(), "{started:?}");
    let st = mine(&["state"]).stdout;
    assert_eq!(json_field(&st, "status").as_deref(), Some("2"), "{st}");
    assert_eq!(mine(&["kill", "--signal", "KILL"]).code, 0);
    assert_eq!(mine(&["wait"]).code, 0);
    assert_eq!(mine(&["delete"]).code, 0);
    assert_eq!(mine(&["shutdown"]).code, 0);
    assert!(
        wait_until(Duration::from_secs(5), || !Path::new(&socket).exists()),
        "the daemon did not exit"
    );
}

fn run_cmd(args: &[&str], stdin: &[u8], tmp: &Path) -> Run {
    let mut child = Command::new(BIN)
        .arg("run")
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn run_exit_status_stdio_env_and_cwd() {
    let tmp = TempDir::new("shimctl-run").unwrap();
    let r = run_cmd(
        &["--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        b"",
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (3, "out\n", "err\n")
    );
    let r = run_cmd(&["--", "cat"], b"hi\n", tmp.path());
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{}", r.stderr);
    let r = run_cmd(&["--", "sh", "-c", "kill -9 $$"], b"", tmp.path());
    assert_eq!(r.code, 137);
    let r = run_cmd(
        &[
            "--env",
            "GREETING=hey",
            "--cwd",
            "/usr",
            "--",
            "sh",
            "-c",
            "echo $GREETING; pwd",
        ],
        b"",
        tmp.path(),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "hey\n/usr\n"),
        "{}",
        r.stderr
    );
    let r = run_cmd(&["--tty", "--", "sh", "-c", "tty"], b"", tmp.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("/dev/pts/"), "{:?}", r.stdout);
    let r = run_cmd(&["--", "no-such-command-here"], b"", tmp.path());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("executable file not found in $PATH"),
        "{}",
        r.stderr
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left behind");
}

/// `run` killed by SIGTERM (forwarded: the task ends 143), or by SIGKILL
/// (its shim follows through PR_SET_PDEATHSIG), leaves nothing behind.
#[test]
fn run_killed_leaves_nothing_behind() {
    for (signal, code) in [("TERM", Some(143)), ("INT", Some(130)), ("KILL", None)] {
        let tmp = TempDir::new("shimctl-run-kill").unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "--", "sh", "-c", "sleep 60; echo not reached"])
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let started = wait_until(Duration::from_secs(10), || {
            entries(tmp.path()).len() == 1
                && children_of(child.id())
                    .iter()
                    .any(|(pid, _)| !children_of(*pid).is_empty())
        });
        assert!(started, "run did not start its task");
        let shim = children_of(child.id())[0].0;
        let task = children_of(shim)[0].0;
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), code, "run after SIG{signal}");
        for p in [shim, task] {
            assert!(
                wait_until(Duration::from_secs(5), || !alive(p)),
                "{p} survived SIG{signal}"
            );
        }
        assert!(
            wait_until(Duration::from_secs(5), || entries(tmp.path()).is_empty()),
            "left behind after SIG{signal}: {:?}",
            entries(tmp.path())
        );
    }
}

#[test]
fn run_on_containerd_shim_runc_v2() {
    if let Some(why) = missing(&["containerd-shim-runc-v2"]) {
        return skip("run_on_containerd_shim_runc_v2", &why);
    }
    let tmp = TempDir::new("shimctl-run-runc").unwrap();
    let bundle = tmp.path().join("bundle");
    make_bundle(&bundle, &["sh", "-c", "echo from-runc; cat; exit 5"], false).unwrap();
    let before: Vec<String> = entries(&bundle);
    let r = run_cmd(
        &[
            "-n",
            "shimctl-test",
            "--shim",
            "containerd-shim-runc-v2",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        b"piped\n",
        tmp.path(),
    );
    assert_eq!(r.code, 5, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout, "from-runc\npiped\n");
    // Our temp dir is gone; the log fifo we made in the bundle too.
    let left: Vec<String> = entries(tmp.path())
        .into_iter()
        .filter(|e| e != "bundle")
        .collect();
    assert_eq!(left, Vec::<String>::new());
    assert!(!entries(&bundle).contains(&"log".to_owned()) || before.contains(&"log".to_owned()));
    assert!(
        wait_until(Duration::from_secs(5), || pids_with_args(&[
            "-namespace",
            "shimctl-test"
        ])
        .is_empty()),
        "the runc shim is still running"
    );
}

/// A release build answers a panicking handler with `Internal` and keeps
/// serving (`panic = "unwind"`; the hook is `SHIMCTL_TEST_PANIC`).
#[test]
fn release_build_answers_internal_when_a_handler_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let build = Command::new(env!("CARGO"))
        .args(["build", "--release", "--locked", "-p", "shimctl"])
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(build.success(), "cargo build --release failed");
    let release = target.join("release/shimctl");
    let release = release.to_str().unwrap();
    let s = Serve::start_with(release, &[("SHIMCTL_TEST_PANIC", "State")]);
    let call = |cmd: &str| {
        let args = ["--socket", &s.socket, "--id", "t", "--timeout", "5s", cmd];
        shimctl_in(release, &args)
    };
    let r = call("state");
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Internal"), "{}", r.stderr);
    let r = call("connect");
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// A descriptor the shim inherited without close-on-exec (fd 7 here) does
/// not reach its tasks: they see stdio and nothing else.
#[test]
fn tasks_inherit_no_descriptor_of_the_shim() {
    let dir = TempDir::new("shimctl-fds").unwrap();
    let path = dir.path().join("shim.sock");
    let socket = format!("unix://{}", path.display());
    let mut child = Command::new("sh")
        .args([
            "-c",
            &format!("exec 7</dev/null; exec {BIN} serve --socket {socket}"),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || path.exists()));
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    std::fs::write(
        b.join("config.json"),
        r#"{"process":{"args":["sh","-c","ls /proc/self/fd | tr '\n' ' '"],"env":["PATH=/usr/bin:/bin"],"cwd":"/"}}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    std::fs::File::create(&out).unwrap();
    let (b, out) = (b.to_str().unwrap(), out.to_str().unwrap());
    ok(&socket, "t", &["create", "--bundle", b, "--stdout", out]);
    ok(&socket, "t", &["start"]);
    assert!(ok(&socket, "t", &["wait"]).starts_with("exit status 0"));
    ok(&socket, "t", &["delete"]);
    ok(&socket, "t", &["shutdown"]);
    let _ = child.wait();
    // `ls` itself holds its directory open as fd 3.
    assert_eq!(std::fs::read_to_string(out).unwrap(), "0 1 2 3 ");
}

/// As in a container, nothing outlives the init: what is left of its
/// process group and its execs are killed when it exits.
#[test]
fn init_exit_takes_its_process_group_and_execs() {
    let s = Serve::start();
    let sock = s.socket.clone();
    let bg_file = s.dir.path().join("bg");
    let script = format!("sleep 60 & echo $! > {}; sleep 1", bg_file.display());
    let bundle = s.bundle("b", &["sh", "-c", &script]);
    ok(&sock, "t", &["create", "--bundle", &bundle]);
    ok(&sock, "t", &["start"]);
    ok(&sock, "t", &["exec", "e", "--", "sleep", "60"]);
    let exec_pid = json_field(&ok(&sock, "t", &["state", "--exec-id", "e"]), "pid")
        .and_then(|p| p.parse::<u32>().ok())
        .expect("exec pid");
    assert!(ok(&sock, "t", &["wait"]).starts_with("exit status 0"));
    let bg: u32 = std::fs::read_to_string(&bg_file)
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    for p in [bg, exec_pid] {
        assert!(p > 0);
        assert!(
            wait_until(Duration::from_secs(5), || !alive(p)),
            "{p} outlived init"
        );
    }
    assert!(ok(&sock, "t", &["wait", "--exec-id", "e"]).starts_with("exit status 137"));
    ok(&sock, "t", &["delete"]);
}

/// `serve --socket` with a bare path makes a socket file there (never an
/// abstract socket unless given `@NAME`), removed again at SIGTERM.
#[test]
fn serve_bare_path_is_a_socket_file() {
    let dir = TempDir::new("shimctl-bare").unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--socket", "shim.sock"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let path = dir.path().join("shim.sock");
    assert!(wait_until(Duration::from_secs(10), || path.exists()));
    let socket = path.to_str().unwrap();
    refused(socket, "t", &["state"], "container not created");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!path.exists());
}
