//! The command line: global flags go before or after the subcommand; words
//! after `--` are an exec's command. Options are read as lexopt reads them
//! (`--long VALUE`, `--long=VALUE`, `-s VALUE`, `-sVALUE`, `-s=VALUE`,
//! `-ab` for two flags), with its messages, by a small [`Lexer`] (lexopt's
//! parser linked `Debug` code for its state, about 3 KB).

use std::ffi::OsString;
use std::time::Duration;

use crate::Fail;

pub(crate) const USAGE: &str = "\
usage: shimctl [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS] [-- EXEC ARGS]
       shimctl --help";

pub(crate) const HELP: &str = "\
shimctl: talk to a containerd shim over ttrpc (task v3, task v2, shim v1)

usage: shimctl [GLOBAL FLAGS] COMMAND [FLAGS] [ARGS] [-- EXEC ARGS]

Global flags (before or after the command):
  --socket ADDR        the shim's address: unix://PATH, @NAME (abstract),
                       a path to a socket file, or a bare NAME that is not a
                       socket file: the abstract \\0NAME\\0 the original
                       `ctr shim --socket` dialled (v1 shims listen there)
  --id ID              container id; sent in every v2/v3 request, so
                       required for them even with --socket. Without
                       --socket the address is derived as containerd 1.6's
                       `ctr shim --id`: /run/containerd/s/<sha256(ADDRESS/NS/ID)>,
                       then the abstract \\0/containerd-shim/NS/ID/shim.sock
  -n, --namespace NS   namespace (default: $CONTAINERD_NAMESPACE or `default`)
  --address PATH       containerd address hashed into the socket name
                       (default /run/containerd/containerd.sock)
  --api auto|v3|v2|v1  shim API (default auto: v3, then v2, then v1, moving
                       on only when the shim does not implement the service)
  --timeout DURATION   per-call timeout, e.g. 5s, 500ms, 1m30s (default 10s
                       for every call except wait, which has none)
  --exec-id E          act on exec process E instead of the init process
  -h, --help           this help

Commands:
  create --bundle DIR [--stdin F] [--stdout F] [--stderr F] [--tty]
         [--runtime NAME]     create the task; prints its pid. Stdio paths
                              that do not exist are created as fifos; an
                              existing file is used as is (never truncated).
                              --runtime is for v1 only (default runc)
  start [ID]                  start the task (or --exec-id); prints the pid
  state [ID]                  print the state as JSON (like `ctr shim state`)
  delete [ID]                 delete the task (or --exec-id); prints
                              `container deleted and returned exit status N`
  exec EXEC_ID [--stdin F] [--stdout F] [--stderr F] [-t|--tty] [-a|--attach]
       [-e|--env K=V]... [--cwd DIR] [--spec FILE] [-- ARGS...]
                              run a process in the container; prints
                              `exec running with pid N`. Without --spec the
                              process comes from the bundle's config.json
                              with ARGS, --env, --cwd and --tty applied.
                              --attach copies the fifos to and from this
                              terminal (raw mode and resizes with --tty)
  kill [--signal SIG] [--all] send a signal (SIGTERM, TERM or 15; default
                              SIGTERM)
  wait                        wait for exit; prints `exit status N at TIME`
  pids                        list processes as JSON
  stats                       print the task's metrics as JSON
  pause | resume              freeze or thaw the container
  close-io [--stdin]          close the process's stdin
  resize --width W --height H resize the process's pty
  connect                     print the shim and task pids as JSON
  shutdown [--now]            ask the shim to exit (v1: ShimInfo, then
                              SIGKILL to the shim)
  decode [FILE]               decode raw ttrpc frames (default stdin) and
                              print each frame as JSON

Built-in shim (host processes, no isolation):
  run [--tty] [-e|--env K=V]... [--cwd DIR] -- CMD ARGS...
                              run CMD as a task of a private built-in shim
                              (socket in a temp dir), attached to this
                              terminal; exits with its status (128+N if
                              killed by signal N). SIGINT, SIGTERM and
                              SIGHUP are forwarded to the task (a second
                              one kills it). The environment is ours plus
                              --env; cwd defaults to ours
  run --shim PATH --bundle DIR
                              the same flow on another task v2 shim binary
                              (e.g. containerd-shim-runc-v2) and an OCI
                              bundle of yours, id run-PID-RANDOM; the shim
                              writes its own files into DIR (see README)
  serve [--daemon] [--allow UID[:GID]]... (--socket ADDR | --id ID)
                              (a bare ADDR is a path; @NAME is abstract)
                              serve the task API (containerd.task.v2.Task
                              and v3) for host processes: no isolation; of
                              config.json only `process` is read (args,
                              env, cwd, terminal, consoleSize); root,
                              user, namespaces, mounts and cgroups are
                              ignored. With --id it listens where `ctr
                              shim --id` looks (with -n and --address).
                              Socket mode 0600; only this euid/egid may
                              connect, plus --allow. --daemon detaches and
                              prints the address once listening. SIGTERM
                              or SIGINT kills the tasks, removes the
                              socket and exits 0

Shim v1 (`containerd-shim`): the id in each request is the process
(--exec-id if given, else the container id); delete --exec-id calls
DeleteProcess; pids calls ListPids; connect and stats are not in the v1 API.

Exit status:
  0  success
  1  the shim answered an error status (printed as one line: code name and
     message), or a call failed after connecting
  2  usage error
  3  the shim could not be reached (every address tried is named)
  4  the command is not supported by the shim's API
";

/// Which API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiSel {
    Auto,
    V3,
    V2,
    V1,
}

/// Everything the command line said.
#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) cmd: Cmd,
    pub(crate) positionals: Vec<String>,
    /// Words after `--`.
    pub(crate) words: Vec<String>,
    pub(crate) socket: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) namespace: String,
    pub(crate) address: String,
    pub(crate) api: ApiSel,
    pub(crate) timeout: Option<Duration>,
    pub(crate) exec_id: Option<String>,
    pub(crate) bundle: Option<String>,
    pub(crate) stdin: Option<String>,
    pub(crate) stdout: Option<String>,
    pub(crate) stderr: Option<String>,
    pub(crate) tty: bool,
    pub(crate) runtime: Option<String>,
    pub(crate) attach: bool,
    pub(crate) env: Vec<String>,
    pub(crate) cwd: Option<String>,
    pub(crate) spec: Option<String>,
    pub(crate) signal: Option<String>,
    pub(crate) all: bool,
    pub(crate) width: Option<u32>,
    pub(crate) height: Option<u32>,
    pub(crate) now: bool,
    pub(crate) close_stdin: bool,
    /// serve: detach like a shim's `start`.
    pub(crate) daemon: bool,
    /// serve: also accept these peers (`UID[:GID]`).
    pub(crate) allow: Vec<String>,
    /// run: a task v2 shim binary to use instead of the built-in one.
    pub(crate) shim: Option<String>,
}

pub(crate) enum Command {
    Help,
    Run(Box<Opts>),
}

/// A subcommand: parsed once, so that nothing after the parser compares
/// strings to find out what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    Create,
    Start,
    State,
    Delete,
    Exec,
    Kill,
    Wait,
    Pids,
    Stats,
    Pause,
    Resume,
    CloseIo,
    Resize,
    Connect,
    Shutdown,
    Decode,
    Serve,
    Run,
}

impl Cmd {
    /// Every command, in the order of its word in [`Cmd::WORDS`].
    const ALL: [Self; 18] = [
        Self::Create,
        Self::Start,
        Self::State,
        Self::Delete,
        Self::Exec,
        Self::Kill,
        Self::Wait,
        Self::Pids,
        Self::Stats,
        Self::Pause,
        Self::Resume,
        Self::CloseIo,
        Self::Resize,
        Self::Connect,
        Self::Shutdown,
        Self::Decode,
        Self::Serve,
        Self::Run,
    ];
    /// The command words, one string (a table of `&str` would cost a
    /// relocation per entry in a static-pie).
    const WORDS: &str = "create start state delete exec kill wait pids stats pause resume close-io resize connect shutdown decode serve run";

    fn from_word(word: &str) -> Option<Self> {
        Self::WORDS
            .split(' ')
            .position(|w| w == word)
            .map(|i| Self::ALL[i])
    }

    /// The word on the command line.
    pub(crate) fn word(self) -> &'static str {
        Self::WORDS.split(' ').nth(self as usize).unwrap_or("")
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// `5s`, `500ms`, `1m30s`, `1.5h`, `250us`, `0`: Go's `time.ParseDuration`
/// without the sign.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    // Integer arithmetic in nanoseconds (no float parsing: it is big; no
    // u128 either), up to 584 years (Go's limit is 292).
    let mut rest = s;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (int, frac) = rest[..n].split_once('.').unwrap_or((&rest[..n], ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit: u64 = match &rest[..u] {
            "ns" => 1,
            "us" | "\u{b5}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[u..];
        let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut part = whole.checked_mul(unit)?;
        let mut scale = unit;
        for d in frac.bytes() {
            if !d.is_ascii_digit() {
                return None;
            }
            scale /= 10;
            part = part.checked_add(u64::from(d - b'0') * scale)?;
        }
        total = total.checked_add(part)?;
    }
    Some(Duration::from_nanos(total))
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail::Usage(msg.into())
}

/// One command-line element, as lexopt's `Arg`.
enum Arg<'a> {
    Short(char),
    Long(&'a str),
    Value(String),
}

impl Arg<'_> {
    /// The error for an option nobody asked for.
    fn unexpected(&self) -> Fail {
        match self {
            Arg::Short(c) => usage(format!("invalid option '-{c}'")),
            Arg::Long(name) => usage(format!("invalid option '--{name}'")),
            Arg::Value(v) => usage(format!("unexpected argument {v:?}")),
        }
    }
}

/// lexopt's lexer, for UTF-8 arguments (the others are refused as they
/// are reached, with lexopt's message).
struct Lexer {
    args: std::vec::IntoIter<OsString>,
    /// The value of `--long=VALUE`, until taken.
    pending: Option<String>,
    /// A `-abc` being read, and the byte offset of the next option in it.
    shorts: Option<(String, usize)>,
    /// The last option returned, as the user wrote it (`--long`, `-s`).
    last: String,
}

impl Lexer {
    fn new(args: Vec<OsString>) -> Self {
        Self {
            args: args.into_iter(),
            pending: None,
            shorts: None,
            last: String::new(),
        }
    }

    fn next(&mut self) -> Result<Option<Arg<'_>>, Fail> {
        if let Some(value) = self.pending.take() {
            return Err(self.unexpected_value(&value));
        }
        if let Some((arg, pos)) = &mut self.shorts {
            match arg[*pos..].chars().next() {
                None => self.shorts = None,
                Some('=') if *pos > 1 => {
                    let value = arg[*pos + 1..].to_owned();
                    self.shorts = None;
                    return Err(self.unexpected_value(&value));
                }
                Some(c) => {
                    *pos += c.len_utf8();
                    self.last = format!("-{c}");
                    return Ok(Some(Arg::Short(c)));
                }
            }
        }
        let Some(mut arg) = self.arg()? else {
            return Ok(None);
        };
        if let Some(long) = arg.strip_prefix("--") {
            if let Some((name, value)) = long.split_once('=') {
                self.pending = Some(value.to_owned());
                arg.truncate(2 + name.len());
            }
            self.last = arg;
            Ok(Some(Arg::Long(&self.last[2..])))
        } else if arg.len() > 1 && arg.starts_with('-') {
            self.shorts = Some((arg, 1));
            self.next()
        } else {
            Ok(Some(Arg::Value(arg)))
        }
    }

    /// The option's value: the rest of `--long=VALUE` or of `-sVALUE`
    /// (less a leading `=`), or else the next argument, whatever it is.
    fn value(&mut self) -> Result<String, Fail> {
        if let Some(value) = self.pending.take() {
            return Ok(value);
        }
        if let Some((arg, pos)) = self.shorts.take() {
            if pos < arg.len() {
                let rest = &arg[pos..];
                return Ok(rest.strip_prefix('=').unwrap_or(rest).to_owned());
            }
        }
        self.arg()?
            .ok_or_else(|| usage(format!("missing argument for option '{}'", self.last)))
    }

    fn arg(&mut self) -> Result<Option<String>, Fail> {
        self.args
            .next()
            .map(|a| {
                a.into_string()
                    .map_err(|a| usage(format!("argument is invalid unicode: {a:?}")))
            })
            .transpose()
    }

    fn unexpected_value(&self, value: &str) -> Fail {
        usage(format!(
            "unexpected argument for option '{}': {value:?}",
            self.last
        ))
    }
}

/// Parses the arguments after the program name.
pub(crate) fn parse(argv: Vec<OsString>) -> Result<Command, Fail> {
    use Arg::{Long, Short, Value};

    // Words after the first `--` are the exec command, kept verbatim.
    let mut head = argv;
    let words = match head.iter().position(|a| a == "--") {
        Some(i) => {
            let words = head.split_off(i + 1);
            head.truncate(i);
            words
        }
        None => Vec::new(),
    };
    let words = words
        .into_iter()
        .map(|w| {
            w.into_string()
                .map_err(|w| usage(format!("not UTF-8: {w:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut o = Opts {
        // Set from the command word below (none is an error).
        cmd: Cmd::State,
        positionals: Vec::new(),
        words,
        socket: None,
        id: None,
        namespace: std::env::var("CONTAINERD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
        address: "/run/containerd/containerd.sock".to_owned(),
        api: ApiSel::Auto,
        timeout: None,
        exec_id: None,
        bundle: None,
        stdin: None,
        stdout: None,
        stderr: None,
        tty: false,
        runtime: None,
        attach: false,
        env: Vec::new(),
        cwd: None,
        spec: None,
        signal: None,
        all: false,
        width: None,
        height: None,
        now: false,
        close_stdin: false,
        daemon: false,
        allow: Vec::new(),
        shim: None,
    };
    let mut cmd: Option<Cmd> = None;
    let mut p = Lexer::new(head);
    let string = Lexer::value;
    let number = |p: &mut Lexer, what: &str| -> Result<u32, Fail> {
        let v = string(p)?;
        v.parse()
            .map_err(|_| usage(format!("{what}: not a number: {v:?}")))
    };
    while let Some(arg) = p.next()? {
        // The options that take a string: one assignment for all of them.
        let slot = match arg {
            Long("socket") => &mut o.socket,
            Long("id") => &mut o.id,
            Long("exec-id") => &mut o.exec_id,
            Long("bundle") => &mut o.bundle,
            Long("stdin") if cmd != Some(Cmd::CloseIo) => &mut o.stdin,
            Long("stdout") => &mut o.stdout,
            Long("stderr") => &mut o.stderr,
            Long("runtime") => &mut o.runtime,
            Long("cwd") => &mut o.cwd,
            Long("spec") => &mut o.spec,
            Long("signal") | Short('s') => &mut o.signal,
            Long("shim") => &mut o.shim,
            arg => {
                match arg {
                    Short('h') | Long("help") => return Ok(Command::Help),
                    Short('n') | Long("namespace") => o.namespace = string(&mut p)?,
                    Long("address") => o.address = string(&mut p)?,
                    Long("api") => {
                        o.api = match string(&mut p)?.as_str() {
                            "auto" => ApiSel::Auto,
                            "v3" | "3" => ApiSel::V3,
                            "v2" | "2" => ApiSel::V2,
                            "v1" | "1" => ApiSel::V1,
                            other => {
                                return Err(usage(format!(
                                    "--api: expected auto, v3, v2 or v1, got {other:?}"
                                )));
                            }
                        }
                    }
                    Long("timeout") => {
                        let v = string(&mut p)?;
                        o.timeout = Some(parse_duration(&v).ok_or_else(|| {
                            usage(format!("--timeout: not a duration: {v:?} (e.g. 5s, 500ms)"))
                        })?);
                    }
                    Long("stdin") => o.close_stdin = true,
                    Short('t') | Long("tty") => o.tty = true,
                    Short('a') | Long("attach") => o.attach = true,
                    Short('e') | Long("env") => o.env.push(string(&mut p)?),
                    Long("all") => o.all = true,
                    Long("width") => o.width = Some(number(&mut p, "--width")?),
                    Long("height") => o.height = Some(number(&mut p, "--height")?),
                    Long("now") => o.now = true,
                    Long("daemon") => o.daemon = true,
                    Long("allow") => o.allow.push(string(&mut p)?),
                    Value(v) => {
                        if cmd.is_none() {
                            cmd = Some(
                                Cmd::from_word(&v)
                                    .ok_or_else(|| usage(format!("unknown command {v:?}")))?,
                            );
                        } else {
                            o.positionals.push(v);
                        }
                    }
                    _ => return Err(arg.unexpected()),
                }
                continue;
            }
        };
        *slot = Some(string(&mut p)?);
    }
    let Some(cmd) = cmd else {
        return Err(usage("no command given"));
    };
    o.cmd = cmd;
    let max_pos = match cmd {
        Cmd::Start | Cmd::State | Cmd::Delete | Cmd::Exec | Cmd::Decode => 1,
        _ => 0,
    };
    if o.positionals.len() > max_pos {
        return Err(usage(format!(
            "{}: unexpected argument {:?}",
            o.cmd, o.positionals[max_pos]
        )));
    }
    if !o.words.is_empty() && cmd != Cmd::Exec && cmd != Cmd::Run {
        return Err(usage(format!("{}: takes no command after --", o.cmd)));
    }
    match cmd {
        Cmd::Create if o.bundle.is_none() => return Err(usage("create: --bundle DIR is required")),
        Cmd::Exec if o.positionals.is_empty() => return Err(usage("exec: EXEC_ID is required")),
        Cmd::Run if o.words.is_empty() && o.shim.is_none() => {
            return Err(usage("run: a command is required after --"));
        }
        Cmd::Run if o.shim.is_some() != o.bundle.is_some() => {
            return Err(usage("run: --shim and --bundle go together"));
        }
        Cmd::Serve if o.socket.is_none() && o.id.is_none() => {
            return Err(usage("serve: --socket ADDR or --id ID is required"));
        }
        Cmd::Resize if o.width.is_none() || o.height.is_none() => {
            return Err(usage("resize: --width and --height are required"));
        }
        _ => {}
    }
    if o.runtime.is_some() && cmd != Cmd::Create {
        return Err(usage("--runtime is for create only"));
    }
    Ok(Command::Run(Box::new(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Cmd::ALL` and `Cmd::WORDS` are two lists kept in step: every
    /// command's word names it, and every word is a command.
    #[test]
    fn command_words_and_commands_agree() {
        assert_eq!(Cmd::WORDS.split(' ').count(), Cmd::ALL.len());
        for (i, cmd) in Cmd::ALL.into_iter().enumerate() {
            assert_eq!(cmd as usize, i, "{cmd:?} out of place in Cmd::ALL");
            assert_eq!(Cmd::from_word(cmd.word()), Some(cmd));
        }
        assert_eq!(Cmd::CloseIo.word(), "close-io");
        assert_eq!(Cmd::from_word("closeio"), None);
    }

    fn run(args: &[&str]) -> Result<Opts, String> {
        match parse(args.iter().map(OsString::from).collect()) {
            Ok(Command::Run(o)) => Ok(*o),
            Ok(Command::Help) => Err("help".into()),
            Err(Fail::Usage(m)) => Err(m),
            Err(other) => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.000000001s"), Some(Duration::new(1, 1)));
        assert_eq!(
            parse_duration("5124095h"),
            Some(Duration::from_secs(5_124_095 * 3600))
        );
        for bad in [
            "",
            "5",
            "s",
            "5x",
            "-1s",
            "1e9999h",
            "1.2.3s",
            ".s",
            "99999999999999999999999999999999999999h",
            "5124096h",
            "5124095h1h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn global_flags_anywhere_and_exec_words() {
        let o = run(&[
            "--id",
            "c1",
            "exec",
            "-t",
            "e1",
            "-n",
            "ns",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "--",
            "sh",
            "-c",
            "echo --id",
        ])
        .unwrap();
        assert_eq!(o.cmd, Cmd::Exec);
        assert_eq!(o.positionals, ["e1"]);
        assert_eq!(o.id.as_deref(), Some("c1"));
        assert_eq!(o.namespace, "ns");
        assert!(o.tty);
        assert_eq!(o.env, ["A=1", "B=2"]);
        assert_eq!(o.words, ["sh", "-c", "echo --id"]);
    }

    #[test]
    fn close_io_stdin_is_a_flag() {
        let o = run(&["close-io", "--stdin", "--id", "x"]).unwrap();
        assert!(o.close_stdin);
        let o = run(&["exec", "e", "--stdin", "/tmp/in"]).unwrap();
        assert_eq!(o.stdin.as_deref(), Some("/tmp/in"));
    }

    /// What the lexer makes of `args` when every option takes a value
    /// except `-a`, `-b` and `--flag`, as lexopt would.
    fn lex(args: &[&str]) -> Vec<String> {
        let mut p = Lexer::new(args.iter().map(OsString::from).collect());
        let mut out = Vec::new();
        loop {
            let arg = match p.next() {
                Ok(Some(arg)) => arg,
                Ok(None) => return out,
                Err(Fail::Usage(m)) => {
                    out.push(format!("error: {m}"));
                    return out;
                }
                Err(_) => unreachable!(),
            };
            let (name, flag) = match arg {
                Arg::Short(c) => (format!("-{c}"), c == 'a' || c == 'b'),
                Arg::Long(l) => (format!("--{l}"), l == "flag"),
                Arg::Value(v) => {
                    out.push(format!("value {v}"));
                    continue;
                }
            };
            if flag {
                out.push(name);
                continue;
            }
            match p.value() {
                Ok(v) => out.push(format!("{name}={v}")),
                Err(Fail::Usage(m)) => {
                    out.push(format!("error: {m}"));
                    return out;
                }
                Err(_) => unreachable!(),
            }
        }
    }

    #[test]
    fn options_are_read_as_lexopt_reads_them() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["--id", "c1", "x"], &["--id=c1", "value x"]),
            (
                &["--id=c1", "--id=", "--id", "-v"],
                &["--id=c1", "--id=", "--id=-v"],
            ),
            (
                &["-n", "ns", "-nns", "-n=ns", "-n", "--"],
                &["-n=ns", "-n=ns", "-n=ns", "-n=--"],
            ),
            (
                &["-ab", "-abnx", "-", "-ba"],
                &["-a", "-b", "-a", "-b", "-n=x", "value -", "-b", "-a"],
            ),
            (
                &["--flag=1"],
                &[
                    "--flag",
                    "error: unexpected argument for option '--flag': \"1\"",
                ],
            ),
            (
                &["-a=1"],
                &["-a", "error: unexpected argument for option '-a': \"1\""],
            ),
            (
                &["-ab=1"],
                &[
                    "-a",
                    "-b",
                    "error: unexpected argument for option '-b': \"1\"",
                ],
            ),
            (
                &["x", "--id"],
                &["value x", "error: missing argument for option '--id'"],
            ),
            (&["-n"], &["error: missing argument for option '-n'"]),
            (&["-é", "ü"], &["-é=ü"]),
            (&["--a=b=c"], &["--a=b=c"]),
        ];
        for (args, want) in cases {
            assert_eq!(lex(args), *want, "{args:?}");
        }
    }

    #[test]
    fn non_utf8_arguments_are_refused_when_reached() {
        use std::os::unix::ffi::OsStringExt as _;
        let bad = || OsString::from_vec(b"a\xffb".to_vec());
        let argv = |v: Vec<OsString>| match parse(v) {
            Err(Fail::Usage(m)) => m,
            _ => "accepted".to_owned(),
        };
        assert_eq!(
            argv(vec!["--id".into(), bad()]),
            r#"argument is invalid unicode: "a\xFFb""#
        );
        assert_eq!(
            argv(vec!["state".into(), "--".into(), bad()]),
            r#"not UTF-8: "a\xFFb""#
        );
        assert!(matches!(
            parse(vec!["--help".into(), bad()]),
            Ok(Command::Help)
        ));
        assert_eq!(
            argv(vec!["state".into(), "--bogus".into()]),
            "invalid option '--bogus'"
        );
        assert_eq!(
            argv(vec!["state".into(), "-x".into()]),
            "invalid option '-x'"
        );
    }

    #[test]
    fn usage_errors() {
        assert!(run(&[]).is_err());
        assert!(run(&["frobnicate"]).is_err());
        assert!(run(&["create"]).unwrap_err().contains("--bundle"));
        assert!(run(&["exec"]).unwrap_err().contains("EXEC_ID"));
        assert!(run(&["state", "a", "b"]).is_err());
        assert!(run(&["kill", "--", "x"]).is_err());
        assert!(run(&["--api", "v9", "state"]).is_err());
        assert!(run(&["--timeout", "soon", "state"]).is_err());
        assert!(run(&["resize", "--width", "80"]).is_err());
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
