//! The OCI `Process` an `exec` sends when not given `--spec`: the bundle's
//! own `process` with the command line applied, so the exec runs as the
//! container's init does (user, capabilities, rlimits), or a minimal one.

use crate::Fail;
use crate::json::Value;

/// The OCI `Process` JSON for exec: `base` (the bundle's config.json
/// `process`) or, without one, uid 0, the standard PATH and cwd `/`; then
/// `args` replaced (if given), `env` appended, `cwd` and `terminal` set,
/// `consoleSize` dropped. Members keep their order, and numbers their text
/// (an rlimit of `18446744073709551615` stays that).
pub(crate) fn build_process(
    base: Option<Value>,
    args: &[String],
    env: &[String],
    cwd: Option<&str>,
    terminal: bool,
) -> Result<Vec<u8>, Fail> {
    fn strings(list: &[String]) -> impl Iterator<Item = Value> + '_ {
        list.iter().map(|s| Value::from(s.as_str()))
    }
    let mut p = base.unwrap_or_else(|| {
        // Parsed rather than built: every member built would be an owned
        // string to drop.
        Value::parse(br#"{"user":{"uid":0,"gid":0},"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"}"#)
            .unwrap_or(Value::Null)
    });
    let not_object = |_| Fail::Other("config.json process is not an object".into());
    if !args.is_empty() {
        p.set("args", Value::Array(strings(args).collect()))
            .map_err(not_object)?;
    }
    let has_args = p
        .get("args")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_args {
        return Err(Fail::Usage(
            "exec: give the command after -- (or --spec FILE)".into(),
        ));
    }
    if !env.is_empty() {
        match p.get_mut("env") {
            Some(Value::Array(list)) => list.extend(strings(env)),
            _ => p
                .set("env", Value::Array(strings(env).collect()))
                .map_err(not_object)?,
        }
    }
    if let Some(cwd) = cwd {
        p.set("cwd", cwd.into()).map_err(not_object)?;
    }
    p.set("terminal", terminal.into()).map_err(not_object)?;
    // The bundle's console size would apply to the exec too.
    p.remove("consoleSize");
    Ok(p.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_from_bundle_or_defaults() {
        let base = Value::parse(
            br#"{"user": {"uid": 5, "gid": 6}, "args": ["sh"], "env": ["A=1"], "cwd": "/x",
                "terminal": true, "consoleSize": {"height": 1, "width": 2}, "oomScoreAdj": -5,
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 18446744073709551615, "soft": 1024}]}"#,
        )
        .unwrap();
        let out = build_process(
            Some(base),
            &["echo".into(), "hi".into()],
            &["B=2".into()],
            Some("/y"),
            false,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"user":{"uid":5,"gid":6},"args":["echo","hi"],"env":["A=1","B=2"],"cwd":"/y","terminal":false,"oomScoreAdj":-5,"rlimits":[{"type":"RLIMIT_NOFILE","hard":18446744073709551615,"soft":1024}]}"#
        );
        let out = build_process(None, &["true".into()], &["X=1".into()], None, true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"user":{"uid":0,"gid":0},"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","X=1"],"cwd":"/","args":["true"],"terminal":true}"#
        );
        assert!(build_process(None, &[], &[], None, false).is_err());
        // A base without env gets one; one whose env is not a list, a list.
        let base = Value::parse(br#"{"args": ["sh"], "env": 7}"#).unwrap();
        let out = build_process(Some(base), &[], &["B=2".into()], None, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"args":["sh"],"env":["B=2"],"terminal":false}"#
        );
        assert!(build_process(Some(Value::Null), &["x".into()], &[], None, false).is_err());
    }
}
