//! `shimctl`: drive a containerd shim by hand over ttrpc — task v3, task v2
//! (`containerd-shim-runc-v2`) and shim v1 (`containerd-shim`). A working
//! replacement for `ctr shim`; see `shimctl --help` and cli/README.md.
//! `shimctl serve` and `shimctl run` add a built-in task shim for host
//! processes (`shim`), so there is always something to drive.

#![deny(unsafe_code)]

mod args;
mod attach;
mod cmd;
#[cfg(test)]
mod codegen_test;
mod conn;
mod decode;
mod json;
mod proto;
mod run;
mod schema;
mod sha256;
mod shim;
mod spec;
mod stdio;
mod sys;
mod wire;
mod wkt;

use std::io::Write as _;
use std::process::ExitCode;

use args::{Command, Opts};

/// Why a command failed; each kind has its own exit code (see `--help`).
#[derive(Debug)]
pub(crate) enum Fail {
    /// The shim answered a non-OK status, or a call failed after
    /// connecting (exit 1).
    Rpc(ttrpc_std::Error),
    /// Something else went wrong locally (exit 1).
    Other(String),
    /// Bad command line (exit 2).
    Usage(String),
    /// No address could be connected to (exit 3).
    Unreachable(String),
    /// The command has no equivalent in the shim's API (exit 4).
    Unsupported(String),
}

impl From<ttrpc_std::Error> for Fail {
    fn from(e: ttrpc_std::Error) -> Self {
        Self::Rpc(e)
    }
}

impl Fail {
    fn exit(&self) -> u8 {
        match self {
            Self::Rpc(_) | Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Unsupported(_) => 4,
        }
    }
}

fn main() -> ExitCode {
    // The release profile aborts on panic: put the terminal back first.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stdio::restore_terminal();
        default_hook(info);
    }));
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let result = match args::parse(argv) {
        Ok(Command::Help) => {
            print!("{}", args::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(opts)) => run(*opts),
        Err(e) => Err(e),
    };
    let _ = std::io::stdout().flush();
    stdio::restore_terminal();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            let line = match &fail {
                Fail::Rpc(ttrpc_std::Error::Status(s)) => format!("{}: {}", s.code, s.message),
                Fail::Rpc(e) => format!("{}: {e}", e.code()),
                Fail::Other(m) | Fail::Unreachable(m) | Fail::Unsupported(m) => m.clone(),
                Fail::Usage(m) => format!("{m}\n\n{}", args::USAGE),
            };
            // A usage error ends with the (multi-line) usage; the others
            // are one line.
            let line = match fail {
                Fail::Usage(_) => line,
                _ => line.replace(['\n', '\r'], " "),
            };
            let _ = writeln!(std::io::stderr().lock(), "shimctl: {line}");
            ExitCode::from(fail.exit())
        }
    }
}

fn run(opts: Opts) -> Result<(), Fail> {
    match opts.cmd {
        args::Cmd::Decode => return decode::run(&opts),
        args::Cmd::Serve => return shim::command(&opts),
        args::Cmd::Run => return run::run(&opts),
        _ => {}
    }
    let ctx = cmd::Ctx::connect(opts)?;
    ctx.dispatch()
}
