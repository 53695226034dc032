//! JSON: the indented output of `state`, `pids`, `stats`, `connect` and
//! `decode` (Go's `json.MarshalIndent(v, "", "    ")` of the gogo structs,
//! as `ctr shim` prints them), and a small JSON tree for reading OCI
//! documents. No serde: its derives over every generated message were the
//! largest part of the binary (cli/README.md).

mod message;
mod pretty;
mod value;

pub(crate) use message::to_pretty;
pub(crate) use pretty::Pretty;
#[allow(unused_imports, reason = "for the built-in shim")]
pub(crate) use value::{MAX_DEPTH, NotAnObject, ParseError, Value};

#[cfg(test)]
mod differential;
#[cfg(test)]
pub(crate) mod golden;
#[cfg(test)]
pub(crate) mod oracle;
