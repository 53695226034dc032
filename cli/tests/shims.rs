//! shimctl against real shims: `containerd-shim-runc-v2` (task v2) and
//! `containerd-shim` (shim v1), started by hand with busybox bundles
//! (support/shimkit). SKIP without root/runc/shims unless
//! `TTRPC_REQUIRE_PEERS=1`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ttrpc_shimkit::{ShimV1, ShimV2, TempDir, make_bundle, missing, read, skip, touch, unique_id};

const INIT: &[&str] = &[
    "sh",
    "-c",
    "trap \"exit 143\" TERM; echo init-out; sleep 30 & wait",
];

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn shimctl(args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_shimctl"))
        .args(args)
        .env_remove("CONTAINERD_NAMESPACE")
        .output()
        .expect("run shimctl");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

#[track_caller]
fn ok(args: &[&str]) -> String {
    let r = shimctl(args);
    assert_eq!(
        r.code, 0,
        "shimctl {args:?} failed: {}{}",
        r.stdout, r.stderr
    );
    r.stdout
}

fn pid_line(s: &str) -> u32 {
    s.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a pid: {s:?}"))
}

fn write_spec(path: &Path, args: &[&str]) {
    let spec = serde_json::json!({
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/bin"],
        "cwd": "/",
        "terminal": false,
    });
    std::fs::write(path, serde_json::to_vec(&spec).unwrap()).unwrap();
}

fn preflight(test: &str, bins: &[&str]) -> bool {
    match missing(bins) {
        Some(reason) => {
            skip(test, &reason);
            false
        }
        None => true,
    }
}

#[test]
fn runc_v2_lifecycle_with_shimctl_alone() {
    if !preflight(
        "runc_v2_lifecycle_with_shimctl_alone",
        &["containerd-shim-runc-v2"],
    ) {
        return;
    }
    let tmp = TempDir::new("shimctl-v2").unwrap();
    let ns = "shimctl-test";
    let id = unique_id("v2");
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, INIT, false).unwrap();
    let (out, err) = (tmp.path().join("out.txt"), tmp.path().join("err.txt"));
    touch(&out).unwrap();
    touch(&err).unwrap();
    let shim = ShimV2::start(&bundle, ns, &id).unwrap();
    let (out_s, err_s) = (out.to_str().unwrap(), err.to_str().unwrap());
    let sock = shim.address.clone();
    let g = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["--socket", &sock, "--id", &id, "-n", ns]
            .iter()
            .map(ToString::to_string)
            .collect();
        v.extend(extra.iter().map(ToString::to_string));
        v
    };
    let run = |extra: &[&str]| {
        let args = g(extra);
        ok(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let pid = pid_line(&run(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--stdout",
        out_s,
        "--stderr",
        err_s,
    ]));
    assert_eq!(pid_line(&run(&["start"])), pid);
    let state: serde_json::Value = serde_json::from_str(&run(&["state"])).unwrap();
    assert_eq!(state["status"], 2, "{state}");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["pid"], pid);
    assert_eq!(state["exited_at"], "0001-01-01T00:00:00Z");

    // Exec with --spec.
    let spec = tmp.path().join("spec.json");
    write_spec(&spec, &["echo", "exec-spec-out"]);
    let line = run(&[
        "exec",
        "e1",
        "--spec",
        spec.to_str().unwrap(),
        "--stdout",
        out_s,
        "--stderr",
        err_s,
    ]);
    assert!(line.starts_with("exec running with pid "), "{line}");
    let waited = run(&["wait", "--exec-id", "e1"]);
    assert!(waited.starts_with("exit status 0 at "), "{waited}");
    run(&["delete", "--exec-id", "e1"]);

    // Exec without --spec: config.json's process, args after --, env added.
    let line = run(&[
        "exec",
        "e2",
        "-e",
        "FOO=bar",
        "--cwd",
        "/bin",
        "--stdout",
        out_s,
        "--stderr",
        err_s,
        "--",
        "sh",
        "-c",
        "echo no-spec $FOO $(pwd)",
    ]);
    assert!(line.starts_with("exec running with pid "), "{line}");
    let waited = run(&["wait", "--exec-id", "e2"]);
    assert!(waited.starts_with("exit status 0 at "), "{waited}");
    let pids: serde_json::Value = serde_json::from_str(&run(&["pids"])).unwrap();
    assert!(
        pids["processes"].as_array().is_some_and(|p| !p.is_empty()),
        "{pids}"
    );
    run(&["delete", "--exec-id", "e2"]);

    // Attached without a tty: our stdin, stdout and stderr through fifos
    // shimctl creates, copied on one thread until the process is gone.
    let fifos = ["in.fifo", "out.fifo", "err.fifo"].map(|f| tmp.path().join(f));
    let [fin, fout, ferr] = fifos.each_ref().map(|p| p.to_str().unwrap());
    let mut args = g(&[
        "exec",
        "e3",
        "-a",
        "--stdin",
        fin,
        "--stdout",
        fout,
        "--stderr",
        ferr,
        "--",
        "sh",
        "-c",
        "read x; echo got $x; echo to-err >&2; cat",
    ]);
    args.retain(|a| !a.is_empty());
    let mut child = Command::new(env!("CARGO_BIN_EXE_shimctl"))
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\nmore input\n").unwrap();
    } // our stdin ends: the process's `cat` sees end of file
    let attached = child.wait_with_output().unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&attached.stdout),
        String::from_utf8_lossy(&attached.stderr),
    );
    assert!(attached.status.success(), "{so}{se}");
    assert!(so.starts_with("exec running with pid "), "{so}");
    assert!(so.ends_with("got hello\nmore input\n"), "{so:?}");
    assert_eq!(se, "to-err\n");
    let waited = run(&["wait", "--exec-id", "e3"]);
    assert!(waited.starts_with("exit status 0 at "), "{waited}");
    run(&["delete", "--exec-id", "e3"]);

    // Stats: the cgroup metrics Any, decoded.
    let stats: serde_json::Value = serde_json::from_str(&run(&["stats"])).unwrap();
    let url = stats["stats"]["type_url"].as_str().unwrap_or_default();
    assert!(url.contains("io.containerd.cgroups.v"), "{stats}");
    assert!(stats["stats"]["value"].is_object(), "{stats}");

    run(&["kill", "--signal", "SIGTERM"]);
    let waited = run(&["wait"]);
    assert!(waited.starts_with("exit status 143 at "), "{waited}");
    assert_eq!(
        run(&["delete"]).trim(),
        "container deleted and returned exit status 143"
    );
    // A second delete is the shim's NotFound: exit 1, one line.
    let r = shimctl(
        &g(&["delete"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("shimctl: NotFound: "), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);

    run(&["shutdown"]);
    assert!(
        shim.wait_gone(Duration::from_secs(10)),
        "shim still running: {:?}",
        shim.pids()
    );
    let output = read(&out);
    for want in ["init-out", "exec-spec-out", "no-spec bar /bin"] {
        assert!(
            output.contains(want),
            "{want:?} not in stdout file: {output:?}"
        );
    }
}

#[test]
fn socket_derived_like_ctr_shim_id() {
    if !preflight(
        "socket_derived_like_ctr_shim_id",
        &["containerd-shim-runc-v2"],
    ) {
        return;
    }
    let tmp = TempDir::new("shimctl-derive").unwrap();
    let ns = "shimctl-derive";
    let id = unique_id("d");
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, INIT, false).unwrap();
    let shim = ShimV2::start(&bundle, ns, &id).unwrap();
    // No --socket: the address comes from sha256(ADDRESS/NS/ID).
    let connect: serde_json::Value =
        serde_json::from_str(&ok(&["--id", &id, "-n", ns, "connect"])).unwrap();
    assert!(
        connect["shim_pid"].as_u64().is_some_and(|p| p > 1),
        "{connect}"
    );
    // The namespace from the environment, as ctr's.
    let r = Command::new(env!("CARGO_BIN_EXE_shimctl"))
        .args(["--id", &id, "state"])
        .env("CONTAINERD_NAMESPACE", ns)
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1), "{r:?}"); // NotFound: reached the shim
    assert!(String::from_utf8_lossy(&r.stderr).contains("NotFound"));
    // The wrong namespace hashes elsewhere: exit 3 naming both addresses.
    let r = shimctl(&["--id", &id, "-n", "elsewhere", "state"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("/run/containerd/s/") && r.stderr.contains("/containerd-shim/elsewhere/"),
        "{}",
        r.stderr
    );
    // Same JSON as ctr 1.6's `ctr shim state` on a created task.
    let out = tmp.path().join("o");
    touch(&out).unwrap();
    ok(&[
        "--id",
        &id,
        "-n",
        ns,
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--stdout",
        out.to_str().unwrap(),
        "--stderr",
        out.to_str().unwrap(),
    ]);
    let ours = ok(&["--id", &id, "-n", ns, "state"]);
    if Command::new("ctr").arg("--version").output().is_ok() {
        let theirs = Command::new("ctr")
            .args(["-n", ns, "shim", "--id", &id, "state"])
            .output()
            .unwrap();
        if theirs.status.success() {
            assert_eq!(ours.trim(), String::from_utf8_lossy(&theirs.stdout).trim());
        }
    }
    ok(&["--id", &id, "-n", ns, "kill", "--signal", "KILL"]);
    ok(&["--id", &id, "-n", ns, "wait"]);
    ok(&["--id", &id, "-n", ns, "delete"]);
    ok(&["--id", &id, "-n", ns, "shutdown"]);
    assert!(shim.wait_gone(Duration::from_secs(10)));
}

#[test]
fn shim_v1_lifecycle_on_abstract_socket() {
    if !preflight(
        "shim_v1_lifecycle_on_abstract_socket",
        &["containerd-shim", "setsid"],
    ) {
        return;
    }
    let tmp = TempDir::new("shimctl-v1").unwrap();
    let id = unique_id("v1");
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, INIT, false).unwrap();
    let (out, err) = (tmp.path().join("out.txt"), tmp.path().join("err.txt"));
    touch(&out).unwrap();
    touch(&err).unwrap();
    let mut shim = ShimV1::start(&bundle, &tmp.path().join("work"), "default", &id).unwrap();
    let sock = shim.socket.clone();
    let v1 = |extra: &[&str]| -> Run {
        let mut args = vec![
            "--api",
            "v1",
            "--socket",
            sock.as_str(),
            "--id",
            id.as_str(),
        ];
        args.extend_from_slice(extra);
        shimctl(&args)
    };
    let okv1 = |extra: &[&str]| -> String {
        let r = v1(extra);
        assert_eq!(r.code, 0, "{extra:?}: {}{}", r.stdout, r.stderr);
        r.stdout
    };
    let (out_s, err_s) = (out.to_str().unwrap(), err.to_str().unwrap());
    let pid = pid_line(&okv1(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--stdout",
        out_s,
        "--stderr",
        err_s,
    ]));
    assert_eq!(pid_line(&okv1(&["start"])), pid);
    // --api auto moves past task v3 and v2 (Unimplemented service) to v1.
    let state = ok(&["--socket", &sock, "--id", &id, "state"]);
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["status"], 2, "{state}");
    assert_eq!(state["pid"], pid);

    let spec = tmp.path().join("spec.json");
    write_spec(&spec, &["echo", "v1-exec-out"]);
    let line = okv1(&[
        "exec",
        "e1",
        "--spec",
        spec.to_str().unwrap(),
        "--stdout",
        out_s,
        "--stderr",
        err_s,
    ]);
    assert!(line.starts_with("exec running with pid "), "{line}");
    assert!(okv1(&["wait", "--exec-id", "e1"]).starts_with("exit status 0 at "));
    okv1(&["delete", "--exec-id", "e1"]);
    let pids: serde_json::Value = serde_json::from_str(&okv1(&["pids"])).unwrap();
    assert!(
        pids["processes"].as_array().is_some_and(|p| !p.is_empty()),
        "{pids}"
    );

    for unsupported in ["connect", "stats"] {
        let r = v1(&[unsupported]);
        assert_eq!(r.code, 4, "{unsupported}: {}", r.stderr);
        assert!(r.stderr.contains("not in the v1 API"), "{}", r.stderr);
    }

    okv1(&["kill", "--signal", "TERM"]);
    assert!(okv1(&["wait"]).starts_with("exit status 143 at "));
    assert_eq!(
        okv1(&["delete"]).trim(),
        "container deleted and returned exit status 143"
    );
    okv1(&["shutdown"]);
    assert!(ttrpc_shimkit::wait_until(Duration::from_secs(5), || shim.exited()));
    assert!(
        read(&out).contains("init-out") && read(&out).contains("v1-exec-out"),
        "{}",
        read(&out)
    );
}

#[test]
fn unreachable_and_usage_exit_codes() {
    let r = shimctl(&[
        "--socket",
        "unix:///nonexistent/shimctl.sock",
        "--id",
        "x",
        "state",
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("unix:///nonexistent/shimctl.sock"),
        "{}",
        r.stderr
    );
    let r = shimctl(&["state"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("usage:"), "{}", r.stderr);
    let r = shimctl(&["bogus"]);
    assert_eq!(r.code, 2);
    let r = shimctl(&["--help"]);
    assert_eq!(r.code, 0);
    for want in [
        "Exit status:",
        "  3  the shim could not be reached",
        "decode [FILE]",
    ] {
        assert!(r.stdout.contains(want), "{want}");
    }
}

#[test]
fn decode_golden_frames() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/golden/frames");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "bin") {
            continue;
        }
        n += 1;
        let r = shimctl(&["decode", path.to_str().unwrap()]);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let first: serde_json::Value = serde_json::Deserializer::from_str(&r.stdout)
            .into_iter()
            .next()
            .unwrap()
            .unwrap();
        let kind = first["header"]["type"].as_str().unwrap();
        if name.starts_with("request") {
            assert_eq!(kind, "request", "{name}");
            assert!(first["request"]["service"].is_string(), "{name}: {first}");
        } else if name.starts_with("response") {
            assert_eq!(kind, "response", "{name}");
        }
    }
    assert!(n >= 5, "golden frames missing in {}", dir.display());
    // Broken input: reported where it breaks, after the good frames.
    let good = std::fs::read(dir.join("request_payload.bin")).unwrap();
    let mut broken = good.clone();
    broken.extend_from_slice(&good[..good.len() - 1]);
    let tmp = TempDir::new("shimctl-decode").unwrap();
    let f = tmp.path().join("broken.bin");
    std::fs::write(&f, &broken).unwrap();
    let r = shimctl(&["decode", f.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("at byte {}", good.len())),
        "{}",
        r.stderr
    );
    assert_eq!(
        serde_json::Deserializer::from_str(&r.stdout)
            .into_iter::<serde_json::Value>()
            .count(),
        1
    );
    let mut garbage = good;
    garbage.truncate(7);
    std::fs::write(&f, &garbage).unwrap();
    let r = shimctl(&["decode", f.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("truncated header at byte 0"),
        "{}",
        r.stderr
    );
}

#[test]
fn tty_exec_attached_through_a_pty() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    if !preflight(
        "tty_exec_attached_through_a_pty",
        &["containerd-shim-runc-v2"],
    ) {
        return;
    }
    let tmp = TempDir::new("shimctl-tty").unwrap();
    let ns = "shimctl-tty";
    let id = unique_id("t");
    let bundle = tmp.path().join(&id);
    make_bundle(&bundle, INIT, false).unwrap();
    let out = tmp.path().join("out.txt");
    touch(&out).unwrap();
    let shim = ShimV2::start(&bundle, ns, &id).unwrap();
    let base = [
        "--socket",
        shim.address.as_str(),
        "--id",
        id.as_str(),
        "-n",
        ns,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(ToString::to_string).collect()
    };
    let o = out.to_str().unwrap();
    ok(&with(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--stdout",
        o,
        "--stderr",
        o,
    ])
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    ok(&with(&["start"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());

    let ws = nix::pty::Winsize {
        ws_row: 40,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&ws), None).unwrap();
    let before = nix::sys::termios::tcgetattr(pty.slave.as_fd()).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let (fin, fout) = (tmp.path().join("in.fifo"), tmp.path().join("out.fifo"));
    let args = with(&[
        "exec",
        "tty1",
        "-t",
        "-a",
        "--stdin",
        fin.to_str().unwrap(),
        "--stdout",
        fout.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "read x; stty size; echo got:$x",
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_shimctl"))
        .args(&args)
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    // Read everything the exec prints until "got:abc" (or time out).
    let (tx, rx) = std::sync::mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut sent = false;
    while !seen.contains("got:abc") && std::time::Instant::now() < deadline {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        if !sent && seen.contains("exec running with pid") {
            // Give the attach time to put the terminal in raw mode and
            // send ResizePty before typing.
            std::thread::sleep(Duration::from_millis(300));
            master.write_all(b"abc\r").unwrap();
            sent = true;
        }
    }
    assert!(seen.contains("exec running with pid"), "{seen:?}");
    assert!(seen.contains("got:abc"), "{seen:?}");
    assert!(seen.contains("40 100"), "ResizePty not applied: {seen:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}: {seen:?}");
    // The terminal is back as it was.
    let after = nix::sys::termios::tcgetattr(slave.as_fd()).unwrap();
    assert_eq!(before.local_flags, after.local_flags);
    assert_eq!(before.input_flags, after.input_flags);
    ok(&with(&["kill", "--signal", "KILL"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    ok(&with(&["wait"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    ok(&with(&["delete"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    ok(&with(&["shutdown"])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert!(shim.wait_gone(Duration::from_secs(10)));
}
