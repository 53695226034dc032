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

struct Header {
    length: u32,
    stream_id: u32,
    kind: String,
    flags: u8,
}

struct Kv {
    key: String,
    value: String,
}

struct Req {
    service: String,
    method: String,
    payload: String,
    timeout_nano: i64,
    metadata: Vec<Kv>,
}

struct Detail {
    type_url: String,
    value: String,
}

struct St {
    code: i32,
    code_name: String,
    message: String,
    details: Vec<Detail>,
}

struct Resp {
    status: Option<St>,
    payload: String,
}

/// One frame as printed.
pub(crate) struct Frame {
    offset: usize,
    header: Header,
    request: Option<Req>,
    response: Option<Resp>,
    data: Option<String>,
}

/// The JSON documents for every frame in `input`, and what stopped
/// decoding early.
pub(crate) fn render(input: &[u8]) -> (String, Option<String>) {
    let (frames, error) = decode_all(input);
    let out = frames.iter().map(Frame::to_json).collect();
    (out, error)
}

impl Frame {
    /// One indented JSON document; `request`, `response`, `status` and
    /// `data` appear only when present, everything else always.
    fn to_json(&self) -> String {
        let mut o = Pretty::new();
        o.open('{');
        o.key("offset");
        o.uint(u64::try_from(self.offset).unwrap_or(u64::MAX));
        o.key("header");
        o.open('{');
        o.key("length");
        o.uint(u64::from(self.header.length));
        o.key("stream_id");
        o.uint(u64::from(self.header.stream_id));
        o.key("type");
        o.string(&self.header.kind);
        o.key("flags");
        o.uint(u64::from(self.header.flags));
        o.close('}');
        if let Some(r) = &self.request {
            o.key("request");
            o.open('{');
            o.key("service");
            o.string(&r.service);
            o.key("method");
            o.string(&r.method);
            o.key("payload");
            o.string(&r.payload);
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
        if let Some(r) = &self.response {
            o.key("response");
            o.open('{');
            if let Some(s) = &r.status {
                o.key("status");
                o.open('{');
                o.key("code");
                o.int(i64::from(s.code));
                o.key("code_name");
                o.string(&s.code_name);
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
                    o.string(&d.value);
                    o.close('}');
                }
                o.close(']');
                o.close('}');
            }
            o.key("payload");
            o.string(&r.payload);
            o.close('}');
        }
        if let Some(d) = &self.data {
            o.key("data");
            o.string(d);
        }
        o.close('}');
        o.finish()
    }
}

/// Every frame in `input` (header, and the decoded Request or Response as a
/// JSON string), and what stopped decoding early.
pub(crate) fn decode_all(input: &[u8]) -> (Vec<Frame>, Option<String>) {
    // No frame can be longer than the input: a larger claim is reported,
    // never allocated.
    let mut dec = FrameDecoder::new(u32::try_from(input.len()).unwrap_or(u32::MAX));
    dec.push(input);
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        match dec.decode() {
            None => break,
            Some(Decoded::Frame { header, data }) => {
                let mut f = Frame {
                    offset,
                    header: Header {
                        length: header.len,
                        stream_id: header.stream_id.get(),
                        kind: kind_name(header.kind),
                        flags: header.flags.0,
                    },
                    request: None,
                    response: None,
                    data: None,
                };
                match header.kind {
                    FrameType::Request => match Request::decode(&data[..]) {
                        Ok(r) => {
                            f.request = Some(Req {
                                service: r.service,
                                method: r.method,
                                payload: base64(&r.payload),
                                timeout_nano: r.timeout_nano,
                                metadata: r
                                    .metadata
                                    .into_iter()
                                    .map(|kv| Kv {
                                        key: kv.key,
                                        value: kv.value,
                                    })
                                    .collect(),
                            });
                        }
                        Err(e) => {
                            out.push(f);
                            return (
                                out,
                                Some(format!("frame at byte {offset}: malformed Request: {e}")),
                            );
                        }
                    },
                    FrameType::Response => match Response::decode(&data[..]) {
                        Ok(r) => {
                            let status = r.status.map(|s| St {
                                code: s.code,
                                code_name: Code::from_i32(s.code).to_string(),
                                message: s.message,
                                details: s
                                    .details
                                    .into_iter()
                                    .map(|d| Detail {
                                        type_url: d.type_url,
                                        value: base64(&d.value),
                                    })
                                    .collect(),
                            });
                            f.response = Some(Resp {
                                status,
                                payload: base64(&r.payload),
                            });
                        }
                        Err(e) => {
                            out.push(f);
                            return (
                                out,
                                Some(format!("frame at byte {offset}: malformed Response: {e}")),
                            );
                        }
                    },
                    _ => f.data = Some(base64(&data)),
                }
                offset += HEADER_LEN + data.len();
                out.push(f);
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
