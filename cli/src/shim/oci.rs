//! What the built-in shim reads of an OCI runtime spec: the `process`
//! (args, env, cwd, terminal, console size). Everything else — root,
//! user, namespaces, cgroups, mounts — is ignored: host processes, no
//! isolation (`shimctl --help` says so).

use crate::json::Value;

/// The parts of an OCI `process` the built-in shim runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProcessSpec {
    pub(super) args: Vec<String>,
    pub(super) env: Vec<String>,
    pub(super) cwd: String,
    pub(super) terminal: bool,
    /// `consoleSize` as (columns, rows).
    pub(super) console_size: Option<(u16, u16)>,
}

fn strings(v: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v
        .as_array()
        .ok_or_else(|| format!("process.{what}: not a list"))?;
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("process.{what}: not a list of strings"))
        })
        .collect()
}

impl ProcessSpec {
    /// Reads an OCI `process` object (the exec request's spec, or
    /// `config.json`'s `process`).
    pub(super) fn from_process(v: &Value) -> Result<Self, String> {
        if v.as_object().is_none() {
            return Err("process: not an object".to_owned());
        }
        let args = strings(v.get("args"), "args")?;
        if args.is_empty() {
            return Err("args must not be empty".to_owned());
        }
        let cwd = match v.get("cwd") {
            None => "/".to_owned(),
            Some(c) => c.as_str().ok_or("process.cwd: not a string")?.to_owned(),
        };
        if !cwd.starts_with('/') {
            return Err(format!("cwd {cwd:?} is not an absolute path"));
        }
        let size = v.get("consoleSize").and_then(|s| {
            let dim = |k| s.get(k)?.as_u64().and_then(|n| u16::try_from(n).ok());
            Some((dim("width")?, dim("height")?))
        });
        Ok(Self {
            args,
            env: strings(v.get("env"), "env")?,
            cwd,
            terminal: v.get("terminal").and_then(Value::as_bool).unwrap_or(false),
            console_size: size,
        })
    }

    /// Reads a bundle's `config.json` bytes.
    pub(super) fn from_config(bytes: &[u8]) -> Result<Self, String> {
        let v = Value::parse(bytes).map_err(|e| format!("config.json: {e}"))?;
        let p = v.get("process").ok_or("config.json: no process")?;
        Self::from_process(p)
    }

    /// Reads an exec request's spec (an OCI `process` as JSON).
    pub(super) fn from_exec(bytes: &[u8]) -> Result<Self, String> {
        let v = Value::parse(bytes).map_err(|e| format!("process spec: {e}"))?;
        Self::from_process(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_process_and_ignores_the_rest() {
        let cfg = br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "process":{"terminal":true,"user":{"uid":5},"args":["sh","-c","exit 3"],
            "env":["PATH=/bin","A=1"],"cwd":"/tmp","consoleSize":{"height":24,"width":80}},
            "linux":{"namespaces":[{"type":"pid"}]}}"#;
        let p = ProcessSpec::from_config(cfg).unwrap();
        assert_eq!(p.args, ["sh", "-c", "exit 3"]);
        assert_eq!(p.env, ["PATH=/bin", "A=1"]);
        assert_eq!(p.cwd, "/tmp");
        assert!(p.terminal);
        assert_eq!(p.console_size, Some((80, 24)));
    }

    #[test]
    fn rejects_what_cannot_run() {
        for (bad, why) in [
            (&br#"{"process":{"args":[]}}"#[..], "args must not be empty"),
            (
                br#"{"process":{"args":["x"],"cwd":"rel"}}"#,
                "not an absolute path",
            ),
            (br#"{"process":{"args":[1]}}"#, "not a list of strings"),
            (br#"{"nope":1}"#, "no process"),
            (br#"{"process":"#, "config.json:"),
        ] {
            let e = ProcessSpec::from_config(bad).unwrap_err();
            assert!(e.contains(why), "{e} lacks {why}");
        }
        let p = ProcessSpec::from_exec(br#"{"args":["true"]}"#).unwrap();
        assert_eq!((p.cwd.as_str(), p.terminal), ("/", false));
    }
}
