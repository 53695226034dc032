//! `shimctl decode [FILE]`: raw ttrpc frames → one JSON document each,
//! using ttrpc-core's `FrameDecoder`; malformed input is reported where it
//! breaks (byte offset), after every good frame before it is printed.

use std::io::Read;

use prost::Message;
use ttrpc_core::{Code, Decoded, FrameDecoder, FrameType, HEADER_LEN, Request, Response};

use crate::Fail;
use crate::args::Opts;
use crate::json::Pretty;
use crate::wkt::base64;

pub(crate) fn run(o: &Opts) -> Result<(), Fail> {
    let mut input = Vec::new();
    let source = o.positionals.first().map_or("-", String::as_str);
    let read = if source == "-" {
        std::io::stdin().lock().read_to_end(&mut input)
    } else {
        std::fs::File::open(source).and_then(|mut f| f.read_to_end(&mut input))
    };
    read.map_err(|e| Fail::Other(format!("read {source}: {e}")))?;
    let (out, error) = render(&input);
    print!("{out}");
    match error {
        None => Ok(()),
        Some(e) => Err(Fail::Other(format!("{source}: {e}"))),
    }
}

fn kind_name(kind: FrameType) -> String {
    match kind {
        FrameType::Request => "request".into(),
        FrameType::Response => "response".into(),
        FrameType::Data => "data".into(),
        other => format!("unknown({})", other.as_u8()),
    }
}

/// The JSON documents for every frame in `input` (one indented document
/// each: `request`, `response`, `status` and `data` appear only when
/// present, everything else always), and what stopped decoding early.
/// Each frame is printed as it is decoded.
pub(crate) fn render(input: &[u8]) -> (String, Option<String>) {
    // No frame can be longer than the input: a larger claim is reported,
    // never allocated.
    let mut dec = FrameDecoder::new(u32::try_from(input.len()).unwrap_or(u32::MAX));
    dec.push(input);
    let mut out = String::new();
    let mut offset = 0usize;
    loop {
        match dec.decode() {
            None => break,
            Some(Decoded::Frame { header, data }) => {
                let mut o = Pretty::new();
                o.open('{');
                o.key("offset");
                o.uint(u64::try_from(offset).unwrap_or(u64::MAX));
                o.key("header");
                o.open('{');
                o.key("length");
                o.uint(u64::from(header.len));
                o.key("stream_id");
                o.uint(u64::from(header.stream_id.get()));
                o.key("type");
                o.string(&kind_name(header.kind));
                o.key("flags");
                o.uint(u64::from(header.flags.0));
                o.close('}');
                // From `Bytes` (a cheap clone): ttrpc-core's connections decode
                // these messages that way, so no second decoder is linked.
                let error = match header.kind {
                    FrameType::Request => match Request::decode(data.clone()) {
                        Ok(r) => {
                            print_request(&mut o, &r);
                            None
                        }
                        Err(e) => Some(format!("frame at byte {offset}: malformed Request: {e}")),
                    },
                    FrameType::Response => match Response::decode(data.clone()) {
                        Ok(r) => {
                            print_response(&mut o, &r);
                            None
                        }
                        Err(e) => Some(format!("frame at byte {offset}: malformed Response: {e}")),
                    },
                    _ => {
                        o.key("data");
                        o.string(&base64(&data));
                        None
                    }
                };
                o.close('}');
                out.push_str(&o.finish());
                if error.is_some() {
                    return (out, error);
                }
                offset += HEADER_LEN + data.len();
            }
            Some(Decoded::Oversized { header }) => {
                return (
                    out,
                    Some(format!(
                        "truncated frame at byte {offset}: header claims {} data bytes, the input has {} after it",
                        header.len,
                        input.len().saturating_sub(offset + HEADER_LEN)
                    )),
                );
            }
        }
    }
    if dec.buffered() > 0 {
        let what = if dec.buffered() >= HEADER_LEN {
            "truncated frame"
        } else {
            "truncated header"
        };
        return (
            out,
            Some(format!(
                "{what} at byte {offset}: {} bytes left over",
                dec.buffered()
            )),
        );
    }
    (out, None)
}

fn print_request(o: &mut Pretty, r: &Request) {
    o.key("request");
    o.open('{');
    o.key("service");
    o.string(&r.service);
    o.key("method");
    o.string(&r.method);
    o.key("payload");
    o.string(&base64(&r.payload));
    o.key("timeout_nano");
    o.int(r.timeout_nano);
    o.key("metadata");
    o.open('[');
    for kv in &r.metadata {
        o.element();
        o.open('{');
        o.key("key");
        o.string(&kv.key);
        o.key("value");
        o.string(&kv.value);
        o.close('}');
    }
    o.close(']');
    o.close('}');
}

fn print_response(o: &mut Pretty, r: &Response) {
    o.key("response");
    o.open('{');
    if let Some(s) = &r.status {
        o.key("status");
        o.open('{');
        o.key("code");
        o.int(i64::from(s.code));
        o.key("code_name");
        o.string(&Code::from_i32(s.code).to_string());
        o.key("message");
        o.string(&s.message);
        o.key("details");
        o.open('[');
        for d in &s.details {
            o.element();
            o.open('{');
            o.key("type_url");
            o.string(&d.type_url);
            o.key("value");
            o.string(&base64(&d.value));
            o.close('}');
        }
        o.close(']');
        o.close('}');
    }
    o.key("payload");
    o.string(&base64(&r.payload));
    o.close('}');
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::render;
    use crate::json::golden::check;

    #[test]
    fn decode_prints_as_pinned() {
        let frames = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/golden/frames");
        let mut names: Vec<_> = std::fs::read_dir(&frames)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".bin"))
            .collect();
        names.sort();
        assert!(names.len() >= 10);
        let mut all = Vec::new();
        let mut failures = Vec::new();
        for name in &names {
            let input = std::fs::read(frames.join(name)).unwrap();
            all.extend_from_slice(&input);
            let (out, err) = render(&input);
            assert_eq!(err, None, "{name}");
            if let Err(e) = check(&format!("decode_{}", name.replace(".bin", ".json")), &out) {
                failures.push(e);
            }
        }
        // Everything in one input, then cut short, then a frame of unknown
        // type, a data frame and a frame whose Request does not decode.
        all.truncate(all.len() - 3);
        let (out, err) = render(&all);
        if let Err(e) = check(
            "decode_all_truncated.json",
            &format!("{out}error: {err:?}\n"),
        ) {
            failures.push(e);
        }
        let mut odd = Vec::new();
        for (kind, flags, payload) in [
            (9u8, 0u8, &b"?"[..]),
            (3, 1, b"data \x00\xff"),
            (3, 2, b""),
            (1, 0, b"\x0a\x01\xff"),
        ] {
            odd.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            odd.extend_from_slice(&3u32.to_be_bytes());
            odd.extend_from_slice(&[kind, flags]);
            odd.extend_from_slice(payload);
        }
        let (out, err) = render(&odd);
        if let Err(e) = check("decode_odd_frames.json", &format!("{out}error: {err:?}\n")) {
            failures.push(e);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
