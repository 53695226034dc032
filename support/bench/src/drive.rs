//! The runner: every case, every implementation, interleaved round-robin
//! for several repetitions, unpinned and pinned to CPU 0; prints one
//! markdown table of medians with ratios to the floor.

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Runner settings (`drive --help` in `main`'s usage).
pub(crate) struct Options {
    reps: usize,
    secs: f64,
    conns: usize,
    tr_conns: usize,
    go: String,
    ttrpc_rust: String,
    sleeper: String,
    sleeper_dyn: Option<String>,
    static_bench: Option<String>,
}

impl Options {
    /// Parses `--name value` pairs; `None` on anything unknown or missing.
    pub(crate) fn parse(args: &[&str]) -> Option<Self> {
        let mut o = Self {
            reps: 5,
            secs: 0.8,
            conns: 10_000,
            tr_conns: 1_000,
            go: String::new(),
            ttrpc_rust: String::new(),
            sleeper: String::new(),
            sleeper_dyn: None,
            static_bench: None,
        };
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let value = *it.next()?;
            match *name {
                "--reps" => o.reps = value.parse().ok()?,
                "--secs" => o.secs = value.parse().ok()?,
                "--conns" => o.conns = value.parse().ok()?,
                "--tr-conns" => o.tr_conns = value.parse().ok()?,
                "--go" => o.go = value.to_string(),
                "--ttrpc-rust" => o.ttrpc_rust = value.to_string(),
                "--sleeper" => o.sleeper = value.to_string(),
                "--sleeper-dyn" => o.sleeper_dyn = Some(value.to_string()),
                "--static-bench" => o.static_bench = Some(value.to_string()),
                _ => return None,
            }
        }
        (!o.go.is_empty() && !o.ttrpc_rust.is_empty() && !o.sleeper.is_empty()).then_some(o)
    }
}

/// One implementation: how to start its server and its client.
struct Imp {
    name: &'static str,
    server: Vec<String>,
    client: Vec<String>,
}

/// Column order of the table; the first is the floor.
const COLUMNS: [&str; 6] = [
    "floor",
    "ttrpc-std",
    "ttrpc-mio",
    "Go ttrpc 1.1.1",
    "ttrpc-rust sync",
    "ttrpc-rust async",
];

fn imps(o: &Options) -> Result<Vec<Imp>> {
    let me = std::env::current_exe()?.display().to_string();
    let ours = |name, imp: &str| Imp {
        name,
        server: vec![me.clone(), "server".into(), imp.into(), "{sock}".into()],
        client: vec![me.clone(), "client".into(), imp.into(), "{sock}".into()],
    };
    let tr = |name, mode: &str| Imp {
        name,
        server: vec![
            o.ttrpc_rust.clone(),
            "server".into(),
            mode.into(),
            "{sock}".into(),
        ],
        client: vec![
            o.ttrpc_rust.clone(),
            "client".into(),
            mode.into(),
            "{sock}".into(),
        ],
    };
    Ok(vec![
        ours(COLUMNS[0], "raw"),
        ours(COLUMNS[1], "std"),
        ours(COLUMNS[2], "mio"),
        Imp {
            name: COLUMNS[3],
            server: vec![o.go.clone(), "server".into(), "{sock}".into()],
            client: vec![o.go.clone(), "client".into(), "{sock}".into()],
        },
        tr(COLUMNS[4], "sync"),
        tr(COLUMNS[5], "async"),
    ])
}

fn command(argv: &[String], sock: &Path, pinned: bool) -> Command {
    let argv: Vec<String> = argv
        .iter()
        .map(|a| a.replace("{sock}", &sock.display().to_string()))
        .collect();
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).args(&argv).env("GOMAXPROCS", "1");
        c
    } else {
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).env_remove("GOMAXPROCS");
        c
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

/// A server process, killed and its socket file removed on drop.
struct Running {
    child: Child,
    sock: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn start_server(imp: &Imp, sock: &Path, pinned: bool) -> Result<Running> {
    let _ = std::fs::remove_file(sock);
    let child = command(&imp.server, sock, pinned).spawn()?;
    let running = Running {
        child,
        sock: sock.to_path_buf(),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        if Instant::now() > deadline {
            return Err(format!("{}: no socket after 10 s", imp.name).into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
    Ok(running)
}

fn run_client(imp: &Imp, sock: &Path, pinned: bool, extra: &[&str]) -> Result<Vec<f64>> {
    let mut cmd = command(&imp.client, sock, pinned);
    cmd.args(extra).stdout(Stdio::piped());
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("{} client {extra:?}: {}", imp.name, out.status).into());
    }
    String::from_utf8(out.stdout)?
        .split_whitespace()
        .map(|w| w.parse::<f64>().map_err(Into::into))
        .collect()
}

fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `RssAnon:`).
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// RSS once two readings 250 ms apart differ by under 1 % (at most 5 s).
fn settled_rss_kib(pid: u32) -> Result<u64> {
    let mut last = rss_kib(pid)?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(250));
        let now = rss_kib(pid)?;
        if now.abs_diff(last) * 100 <= last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// `(idle KiB, idle anonymous KiB, bytes per idle connection)` of one
/// server.
fn server_memory(
    me: &str,
    imp: &Imp,
    sock: &Path,
    pinned: bool,
    n: usize,
) -> Result<(u64, u64, f64)> {
    let server = start_server(imp, sock, pinned)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(250));
    let idle = settled_rss_kib(pid)?;
    let anon = status_kib(pid, "RssAnon:")?;
    let fds = open_fds(pid);
    let hold = vec![
        me.to_string(),
        "hold".into(),
        "{sock}".into(),
        n.to_string(),
    ];
    let mut holder = command(&hold, sock, pinned)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(holder.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let result = (|| {
        if line.trim() != "ready" {
            return Err(format!("{}: holder failed", imp.name).into());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while open_fds(pid) < fds + n {
            if Instant::now() > deadline {
                return Err(
                    format!("{}: {} of {n} accepted", imp.name, open_fds(pid) - fds).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let busy = settled_rss_kib(pid)?;
        #[allow(clippy::cast_precision_loss)]
        let per = (busy.saturating_sub(idle) * 1024) as f64 / n as f64;
        Ok((idle, anon, per))
    })();
    drop(holder.stdin.take());
    let _ = holder.wait();
    drop(server);
    result
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        f64::midpoint(v[m - 1], v[m])
    })
}

type Key = (&'static str, bool, &'static str); // (row, pinned, column)

/// Runs everything; prints the table on stdout, progress on stderr.
pub(crate) fn run(o: &Options) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    let need = u64::try_from(o.conns)? + 64;
    if hard < need {
        eprintln!("warning: RLIMIT_NOFILE hard limit {hard} < {need}: raise it (prlimit)");
    }

    let imps = imps(o)?;
    let me = std::env::current_exe()?.display().to_string();
    let dir = std::env::temp_dir().join(format!("ttrpc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut results: HashMap<Key, Vec<f64>> = HashMap::new();
    let mut seq = 0u32;
    let mut sock = || {
        seq += 1;
        dir.join(format!("{seq}.sock"))
    };
    let secs = o.secs.to_string();
    let started = Instant::now();
    let load_before = load_average();

    for rep in 0..o.reps {
        for pinned in [true, false] {
            for (row, case) in [
                ("rtt16", "rtt16"),
                ("inflight16", "inflight16"),
                ("mib", "mib"),
            ] {
                for imp in &imps {
                    let s = sock();
                    let value = start_server(imp, &s, pinned)
                        .and_then(|_server| run_client(imp, &s, pinned, &[case, &secs]))
                        .and_then(|v| match v.as_slice() {
                            [calls, ns] if *calls > 0.0 => Ok(if case == "inflight16" {
                                calls / (ns / 1e9)
                            } else {
                                ns / calls / 1e3
                            }),
                            _ => Err("bad client output".into()),
                        });
                    let value = value.unwrap_or_else(|e| {
                        eprintln!("  {}: {e}", imp.name);
                        f64::NAN
                    });
                    eprintln!(
                        "[{:>5.1}s] rep {rep} {} {case:<10} {:<17} {value:.2}",
                        started.elapsed().as_secs_f64(),
                        if pinned { "pinned  " } else { "unpinned" },
                        imp.name
                    );
                    results
                        .entry((row, pinned, imp.name))
                        .or_default()
                        .push(value);
                }
            }
            for imp in &imps[1..3] {
                let s = sock();
                let v = start_server(imp, &s, pinned)
                    .and_then(|_server| run_client(imp, &s, pinned, &["allocs", "20000"]));
                match v.as_deref() {
                    Ok([client, server]) => {
                        results
                            .entry(("alloc_client", pinned, imp.name))
                            .or_default()
                            .push(*client);
                        results
                            .entry(("alloc_server", pinned, imp.name))
                            .or_default()
                            .push(*server);
                        eprintln!("rep {rep} allocs {:<10} {client:.2} {server:.2}", imp.name);
                    }
                    other => eprintln!("  {} allocs: {other:?}", imp.name),
                }
            }
        }
    }

    // Memory: once per pinning (10,000 connections take a while).
    let sleeper = Imp {
        name: COLUMNS[0],
        server: vec![o.sleeper.clone()],
        client: vec![],
    };
    let mut dyn_floor = None;
    for pinned in [true, false] {
        match idle_floor(&sleeper.server, pinned) {
            #[allow(clippy::cast_precision_loss)]
            Ok((kib, anon)) => {
                results
                    .entry(("rss_idle", pinned, COLUMNS[0]))
                    .or_default()
                    .push(kib as f64);
                results
                    .entry(("rss_anon", pinned, COLUMNS[0]))
                    .or_default()
                    .push(anon as f64);
            }
            Err(e) => eprintln!("  sleeper: {e}"),
        }
        if let (Some(path), true) = (&o.sleeper_dyn, pinned) {
            dyn_floor = idle_floor(std::slice::from_ref(path), pinned).ok();
        }
        if let Some(path) = &o.static_bench {
            // The server-only binary built beside it: what a server ships as.
            let server_only = Path::new(path)
                .with_file_name("ttrpc-bench-server")
                .display()
                .to_string();
            for imp in &imps[1..3] {
                let kind = if imp.name == COLUMNS[1] { "std" } else { "mio" };
                let argv = [server_only.clone(), kind.into(), "{sock}".into()];
                let s = sock();
                let idle = start_server(
                    &Imp {
                        name: imp.name,
                        server: argv.to_vec(),
                        client: vec![],
                    },
                    &s,
                    pinned,
                )
                .and_then(|server| {
                    std::thread::sleep(Duration::from_millis(250));
                    settled_rss_kib(server.child.id())
                });
                match idle {
                    #[allow(clippy::cast_precision_loss)]
                    Ok(kib) => results
                        .entry(("rss_static", pinned, imp.name))
                        .or_default()
                        .push(kib as f64),
                    Err(e) => eprintln!("  {} static: {e}", imp.name),
                }
            }
            if let Some(floor) = results.get(&("rss_idle", pinned, COLUMNS[0])).cloned() {
                results.insert(("rss_static", pinned, COLUMNS[0]), floor);
            }
        }
        for imp in &imps[1..] {
            let n = if imp.name.starts_with("ttrpc-rust") {
                o.tr_conns
            } else {
                o.conns
            };
            match server_memory(&me, imp, &sock(), pinned, n) {
                Ok((idle, anon, per)) => {
                    eprintln!(
                        "rss {} {:<17} idle {idle} KiB, {per:.0} B/conn ({n})",
                        pinned, imp.name
                    );
                    #[allow(clippy::cast_precision_loss)]
                    results
                        .entry(("rss_idle", pinned, imp.name))
                        .or_default()
                        .push(idle as f64);
                    results
                        .entry(("rss_conn", pinned, imp.name))
                        .or_default()
                        .push(per);
                    #[allow(clippy::cast_precision_loss)]
                    results
                        .entry(("rss_anon", pinned, imp.name))
                        .or_default()
                        .push(anon as f64);
                }
                Err(e) => eprintln!("  {} memory: {e}", imp.name),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("total {:.0} s", started.elapsed().as_secs_f64());
    println!(
        "- load average (1, 5, 15 min) at start: {load_before}; at end: {}; {:.0} s in all",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    println!();
    print_table(o, &results);
    if let Some((kib, anon)) = dyn_floor {
        println!();
        println!(
            "The same do-nothing process dynamically linked (as every server here is): \
             {kib} KiB RSS, {anon} KiB anonymous (pinned)."
        );
    }
    Ok(())
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// `(RSS KiB, anonymous KiB)` of a do-nothing process.
fn idle_floor(argv: &[String], pinned: bool) -> Result<(u64, u64)> {
    let mut child = command(argv, Path::new(""), pinned).spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let pid = child.id();
    let result = rss_kib(pid).and_then(|kib| Ok((kib, status_kib(pid, "RssAnon:")?)));
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// How a row's cells are shown and compared with the floor.
enum Kind {
    /// Lower is better: ratio = value / floor.
    Time,
    /// Higher is better: ratio = floor / value.
    Rate,
    /// Shown as the difference from the floor column.
    OverFloor,
    /// No floor.
    Plain,
}

fn print_table(o: &Options, results: &HashMap<Key, Vec<f64>>) {
    let rows: [(&str, String, Kind, usize); 9] = [
        (
            "rtt16",
            "16 B round trip, 1 in flight (µs/call)".into(),
            Kind::Time,
            1,
        ),
        (
            "inflight16",
            "16 B, 16 in flight, 1 connection (calls/s)".into(),
            Kind::Rate,
            0,
        ),
        ("mib", "1 MiB each way (µs/call)".into(), Kind::Time, 0),
        (
            "alloc_client",
            "allocations per unary call, client".into(),
            Kind::Plain,
            2,
        ),
        (
            "alloc_server",
            "allocations per unary call, server".into(),
            Kind::Plain,
            2,
        ),
        (
            "rss_idle",
            "idle server RSS (KiB; floor = static do-nothing process)".into(),
            Kind::OverFloor,
            0,
        ),
        (
            "rss_static",
            "idle server RSS, server-only binary, static opt-level \"z\" build (KiB)".into(),
            Kind::OverFloor,
            0,
        ),
        (
            "rss_anon",
            "idle server anonymous RSS (KiB; RssAnon)".into(),
            Kind::OverFloor,
            0,
        ),
        (
            "rss_conn",
            format!(
                "RSS per idle connection (bytes; {} conns, ttrpc-rust {})",
                o.conns, o.tr_conns
            ),
            Kind::Plain,
            0,
        ),
    ];
    println!("| case | pinning | {} |", COLUMNS.join(" | "));
    println!("|---|---|{}", "---:|".repeat(COLUMNS.len()));
    for pinned in [true, false] {
        for (key, label, kind, digits) in &rows {
            let floor = results
                .get(&(*key, pinned, COLUMNS[0]))
                .and_then(|v| median(v));
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|col| {
                    let Some(m) = results.get(&(*key, pinned, *col)).and_then(|v| median(v)) else {
                        return "—".into();
                    };
                    let value = format!("{m:.digits$}", digits = *digits);
                    match (kind, floor) {
                        (_, _) if *col == COLUMNS[0] => value,
                        (Kind::Time, Some(f)) => format!("{value} ({:.2}×)", m / f),
                        (Kind::Rate, Some(f)) => format!("{value} ({:.2}×)", f / m),
                        (Kind::OverFloor, Some(f)) => format!("{value} (+{:.0})", m - f),
                        _ => value,
                    }
                })
                .collect();
            println!(
                "| {label} | {} | {} |",
                if pinned { "pinned (CPU 0)" } else { "unpinned" },
                cells.join(" | ")
            );
        }
    }
}
