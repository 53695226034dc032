//! Typed ttrpc stubs from `.proto` services, for `build.rs` (feature
//! `codegen`).
//!
//! [`Generator`] is a prost-build [`ServiceGenerator`]. For each service
//! `package.Name` it writes, next to prost's messages:
//!
//! | item | what it is |
//! |---|---|
//! | `pub const NAME_SERVICE: &str` | the ttrpc service name, `"package.Name"` |
//! | `pub struct NameClient<C>` | a client stub over any [`UnaryCall`](crate::stub::UnaryCall) `C` (e.g. `ttrpc_std::Client` or `&Client`): `new(inner)`, `with_service(inner, name)` (the same messages under another service name, e.g. a wire-identical v3 of a v2 service), and one method per rpc, `fn rpc(&self, &Req, &CallOptions) -> Result<Resp, C::Error>` |
//! | `pub trait Name: Send + Sync + 'static` | the server side: one method per rpc, `fn rpc(&self, ctx: &IncomingRequest, req: Req, reply: Reply<Resp>)`; each defaults to answering `Unimplemented` (`method Rpc`), as Go's `UnimplementedNameServer` does. Keep the [`Reply`](crate::stub::Reply) to answer later from any thread (a shim's `Wait`) |
//! | `pub fn register_name(&mut Registry, Arc<impl Name + ?Sized>)` | routes every rpc of the service on a [`Registry`](crate::Registry) (streaming rpcs with `register_stream`); a request that does not decode is answered `InvalidArgument` |
//!
//! Method names are prost-build's snake-case names (`CloseIO` →
//! `close_io`); the ttrpc method name sent on the wire is the rpc's proto
//! name. `google.protobuf.Empty` is mapped to `()` by prost-build, which
//! encodes as an empty payload: `client.pause(&(), &opts)` returns
//! `Result<(), _>`.
//!
//! Streaming rpcs (ttrpc 1.2) get, on the client, a second `impl` block
//! for transports implementing [`StreamCall`](crate::stub::StreamCall)
//! (`ttrpc_std::Client`): `fn rpc(&self, &Req, &CallOptions)` for a
//! server-streaming rpc and `fn rpc(&self, &CallOptions)` for
//! client-streaming and bidirectional ones, each returning a
//! [`TypedStream<C::Stream, Req, Resp>`](crate::stub::TypedStream)
//! (`send`, `close_send`, `recv`, `close_and_recv`). On the server the
//! trait gets `fn rpc(&self, ctx, req: Req, stream: ServerStreamOf<Req,
//! Resp>)` (server-streaming) or `fn rpc(&self, ctx, stream)` (the
//! others), registered with [`Registry::register_stream`](crate::Registry::register_stream);
//! they run where the transport runs blocking stream handlers (a thread of
//! their own in `ttrpc-std`) and default to `Unimplemented`. Unary output
//! is the same with or without streaming rpcs in the service.
//!
//! # Use
//!
//! ```toml
//! [dependencies]
//! ttrpc-core = "0.1"
//! ttrpc-std = "0.1"          # or any transport implementing UnaryCall
//!
//! [build-dependencies]
//! ttrpc-core = { version = "0.1", features = ["codegen"] }
//! ```
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     ttrpc_core::codegen::compile(&["proto/echo.proto"], &["proto"], |_config| {})
//! }
//! ```
//!
//! and in the crate, `include!(concat!(env!("OUT_DIR"), "/my.package.rs"));`
//! (prost-build names each file after its proto package). No `protoc` is
//! needed: [`compile`] parses with protox. For more control build a
//! [`prost_build::Config`] yourself and pass
//! `Box::new(Generator::new())` to `Config::service_generator`.
//!
//! The generated code names only `::ttrpc_core` (and `std`, `prost`
//! through it); [`Generator::core_path`] changes that root, e.g. for a
//! crate that re-exports ttrpc-core.

use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;

pub use prost_build;
pub use prost_build::{Method, Service, ServiceGenerator};
pub use prost_types;
pub use protox;

/// The prost-build service generator writing ttrpc client stubs, server
/// traits and registration functions (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct Generator {
    core_path: String,
    client: bool,
    server: bool,
}

impl Default for Generator {
    fn default() -> Self {
        Self {
            core_path: "::ttrpc_core".to_owned(),
            client: true,
            server: true,
        }
    }
}

impl Generator {
    /// Clients and servers, naming `::ttrpc_core`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The Rust path generated code uses for ttrpc-core (default
    /// `::ttrpc_core`).
    #[must_use]
    pub fn core_path(mut self, path: impl Into<String>) -> Self {
        self.core_path = path.into();
        self
    }

    /// Whether to write client stubs (default true).
    #[must_use]
    pub fn client(mut self, on: bool) -> Self {
        self.client = on;
        self
    }

    /// Whether to write server traits and `register_*` (default true).
    #[must_use]
    pub fn server(mut self, on: bool) -> Self {
        self.server = on;
        self
    }
}

/// `UpperCamel` → `UPPER_SNAKE`.
fn upper_snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut prev_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn doc_lines(buf: &mut String, indent: &str, comments: &prost_build::Comments) {
    for line in &comments.leading {
        // Keep comment text literal: no code blocks, no intra-doc links.
        let line = line.trim_end().replace('[', "\\[").replace(']', "\\]");
        let line = line.trim_start();
        if line.is_empty() {
            let _ = writeln!(buf, "{indent}///");
        } else {
            let _ = writeln!(buf, "{indent}/// {line}");
        }
    }
}

impl ServiceGenerator for Generator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let core = &self.core_path;
        let full = if service.package.is_empty() {
            service.proto_name.clone()
        } else {
            format!("{}.{}", service.package, service.proto_name)
        };
        let konst = format!("{}_SERVICE", upper_snake(&service.name));
        let unary: Vec<&Method> = service
            .methods
            .iter()
            .filter(|m| !m.client_streaming && !m.server_streaming)
            .collect();

        let streams: Vec<&Method> = service
            .methods
            .iter()
            .filter(|m| m.client_streaming || m.server_streaming)
            .collect();

        let _ = writeln!(buf, "/// The ttrpc service name of `{full}`.");
        let _ = writeln!(buf, "pub const {konst}: &str = \"{full}\";");

        if self.client {
            let client = format!("{}Client", service.name);
            let _ = writeln!(
                buf,
                "/// A client for `{full}` over any [`{core}::stub::UnaryCall`]."
            );
            let _ = writeln!(buf, "#[derive(Debug, Clone)]");
            let _ = writeln!(
                buf,
                "pub struct {client}<C> {{\n    inner: C,\n    service: &'static str,\n}}"
            );
            let _ = writeln!(buf, "impl<C> {client}<C> {{");
            let _ = writeln!(
                buf,
                "    /// A stub calling `{full}` through `inner`.\n    pub fn new(inner: C) -> Self {{\n        Self {{ inner, service: {konst} }}\n    }}"
            );
            let _ = writeln!(
                buf,
                "    /// A stub sending these messages under another service name: for a wire-identical\n    /// version of the service in another package (e.g. containerd's task v2 and v3).\n    pub fn with_service(inner: C, service: &'static str) -> Self {{\n        Self {{ inner, service }}\n    }}"
            );
            let _ = writeln!(
                buf,
                "    /// The service name sent.\n    pub fn service(&self) -> &'static str {{\n        self.service\n    }}"
            );
            let _ = writeln!(
                buf,
                "    /// The transport.\n    pub fn inner(&self) -> &C {{\n        &self.inner\n    }}"
            );
            let _ = writeln!(
                buf,
                "    /// The transport, by value.\n    pub fn into_inner(self) -> C {{\n        self.inner\n    }}"
            );
            let _ = writeln!(buf, "}}");
            let _ = writeln!(buf, "impl<C: {core}::stub::UnaryCall> {client}<C> {{");
            for m in &unary {
                doc_lines(buf, "    ", &m.comments);
                let _ = writeln!(
                    buf,
                    "    /// Calls `{full}/{}`.\n    ///\n    /// # Errors\n    /// The transport's error, including a non-OK status and an answer that does not decode.",
                    m.proto_name
                );
                let _ = writeln!(
                    buf,
                    "    pub fn {name}(&self, request: &{input}, options: &{core}::CallOptions) -> ::core::result::Result<{output}, C::Error> {{\n        {core}::stub::call(&self.inner, self.service, \"{proto}\", request, options)\n    }}",
                    name = m.name,
                    input = m.input_type,
                    output = m.output_type,
                    proto = m.proto_name,
                );
            }
            let _ = writeln!(buf, "}}");
            if !streams.is_empty() {
                self.client_streams(buf, &full, &client, &streams);
            }
        }

        if self.server {
            let tr = &service.name;
            doc_lines(buf, "", &service.comments);
            let _ = writeln!(
                buf,
                "/// The server side of `{full}`: register an implementation with [`register_{}`].\n///\n/// Every method answers through its `reply`, now or later, from any thread; the defaults answer `Unimplemented`.",
                m_snake(tr)
            );
            let _ = writeln!(
                buf,
                "pub trait {tr}: ::core::marker::Send + ::core::marker::Sync + 'static {{"
            );
            for m in &unary {
                doc_lines(buf, "    ", &m.comments);
                let _ = writeln!(buf, "    /// Handles `{full}/{}`.", m.proto_name);
                let _ = writeln!(
                    buf,
                    "    fn {name}(&self, ctx: &{core}::IncomingRequest, request: {input}, reply: {core}::stub::Reply<{output}>) {{\n        let _ = (ctx, request);\n        reply.error({core}::stub::unimplemented(\"{proto}\"));\n    }}",
                    name = m.name,
                    input = m.input_type,
                    output = m.output_type,
                    proto = m.proto_name,
                );
            }
            for m in &streams {
                self.server_stream_method(buf, &full, m);
            }
            let _ = writeln!(buf, "}}");
            let _ = writeln!(
                buf,
                "/// Routes every rpc of `{full}` to `service` on `registry`.\npub fn register_{snake}<S: {tr} + ?Sized>(registry: &mut {core}::Registry, service: ::std::sync::Arc<S>) {{",
                snake = m_snake(tr)
            );
            if !unary.is_empty() {
                // One handler type for every unary rpc, routing on the
                // rpc's index: one closure (one `Handler` impl, one vtable,
                // one `register` call in a loop) per service rather than per
                // rpc, which a static binary pays for in code and
                // relocations.
                let names: Vec<String> = unary
                    .iter()
                    .map(|m| format!("\"{}\"", m.proto_name))
                    .collect();
                let _ = writeln!(
                    buf,
                    "    let methods: [&str; {n}] = [{list}];\n    for (i, method) in methods.into_iter().enumerate() {{\n        let s = ::std::sync::Arc::clone(&service);\n        registry.register({konst}, method, move |req: {core}::IncomingRequest, r: {core}::Responder| match i {{",
                    n = unary.len(),
                    list = names.join(", "),
                );
                for (i, m) in unary.iter().enumerate() {
                    let _ = writeln!(
                        buf,
                        "            {i} => {core}::stub::serve(req, r, |ctx, m: {input}, reply: {core}::stub::Reply<{output}>| s.{name}(ctx, m, reply)),",
                        name = m.name,
                        input = m.input_type,
                        output = m.output_type,
                    );
                }
                // Unreachable; the dropped responder would answer `Internal`.
                let _ = writeln!(buf, "            _ => {{}}\n        }});\n    }}");
            }
            for m in &streams {
                self.register_stream_method(buf, &konst, m);
            }
            let _ = writeln!(buf, "    let _ = service;\n}}");
        }
    }
}

/// The stream kind of a streaming rpc, as a path.
fn kind(core: &str, m: &Method) -> String {
    let k = match (m.client_streaming, m.server_streaming) {
        (true, true) => "Bidirectional",
        (true, false) => "ClientStreaming",
        _ => "ServerStreaming",
    };
    format!("{core}::StreamKind::{k}")
}

impl Generator {
    /// The client's stream methods, in an `impl` block of their own (for
    /// transports implementing `StreamCall`).
    fn client_streams(&self, buf: &mut String, full: &str, client: &str, streams: &[&Method]) {
        let core = &self.core_path;
        let _ = writeln!(buf, "impl<C: {core}::stub::StreamCall> {client}<C> {{");
        for m in streams {
            doc_lines(buf, "    ", &m.comments);
            let stream = format!(
                "{core}::stub::TypedStream<C::Stream, {}, {}>",
                m.input_type, m.output_type
            );
            let kind = kind(core, m);
            if m.client_streaming {
                let what = if m.server_streaming {
                    "bidirectional: `send` and `recv` in any order, `close_send` when done"
                } else {
                    "client-streaming: `send` each message, then `close_and_recv` for the answer"
                };
                let _ = writeln!(
                    buf,
                    "    /// Opens `{full}/{proto}` ({what}).\n    ///\n    /// # Errors\n    /// The transport's error before the stream is open.\n    pub fn {name}(&self, options: &{core}::CallOptions) -> ::core::result::Result<{stream}, C::Error> {{\n        {core}::stub::open(&self.inner, self.service, \"{proto}\", {kind}, None, options)\n    }}",
                    name = m.name,
                    proto = m.proto_name,
                );
            } else {
                let _ = writeln!(
                    buf,
                    "    /// Opens `{full}/{proto}` (server-streaming: `recv` until `Ok(None)`).\n    ///\n    /// # Errors\n    /// The transport's error before the stream is open.\n    pub fn {name}(&self, request: &{input}, options: &{core}::CallOptions) -> ::core::result::Result<{stream}, C::Error> {{\n        {core}::stub::open(&self.inner, self.service, \"{proto}\", {kind}, Some(request), options)\n    }}",
                    name = m.name,
                    input = m.input_type,
                    proto = m.proto_name,
                );
            }
        }
        let _ = writeln!(buf, "}}");
    }

    /// A server trait's method for a streaming rpc.
    fn server_stream_method(&self, buf: &mut String, full: &str, m: &Method) {
        let core = &self.core_path;
        doc_lines(buf, "    ", &m.comments);
        let stream = format!(
            "{core}::stub::ServerStreamOf<{}, {}>",
            m.input_type, m.output_type
        );
        if m.client_streaming {
            let _ = writeln!(
                buf,
                "    /// Handles the stream `{full}/{proto}`: `stream.recv()` the client's messages, finish with `close` or `respond`. Runs on a thread of its own and may block.\n    fn {name}(&self, ctx: &{core}::IncomingRequest, stream: {stream}) {{\n        let _ = ctx;\n        stream.respond(::core::result::Result::Err({core}::stub::unimplemented(\"{proto}\")));\n    }}",
                name = m.name,
                proto = m.proto_name,
            );
        } else {
            let _ = writeln!(
                buf,
                "    /// Handles the stream `{full}/{proto}`: `stream.send` answers, finish with `close` (or `respond` with an error). Runs on a thread of its own and may block.\n    fn {name}(&self, ctx: &{core}::IncomingRequest, request: {input}, stream: {stream}) {{\n        let _ = (ctx, request);\n        stream.respond(::core::result::Result::Err({core}::stub::unimplemented(\"{proto}\")));\n    }}",
                name = m.name,
                input = m.input_type,
                proto = m.proto_name,
            );
        }
    }

    /// The `register_*` lines of a streaming rpc.
    fn register_stream_method(&self, buf: &mut String, konst: &str, m: &Method) {
        let core = &self.core_path;
        let stream = format!(
            "{core}::stub::ServerStreamOf<{}, {}>",
            m.input_type, m.output_type
        );
        let body = if m.client_streaming {
            format!("s.{}(&req, {core}::stub::ServerStreamOf::new(st));", m.name)
        } else {
            format!(
                "{core}::stub::serve_stream(req, st, |ctx, m: {input}, st: {stream}| s.{name}(ctx, m, st));",
                input = m.input_type,
                name = m.name,
            )
        };
        let _ = writeln!(
            buf,
            "    {{\n        let s = ::std::sync::Arc::clone(&service);\n        registry.register_stream({konst}, \"{proto}\", move |req: {core}::IncomingRequest, st: {core}::ServerStream| {{\n            {body}\n        }});\n    }}",
            proto = m.proto_name,
        );
    }
}

/// `UpperCamel` → `snake_case`.
fn m_snake(name: &str) -> String {
    upper_snake(name).to_ascii_lowercase()
}

/// Compiles `protos` (searched in `includes`) with protox and prost-build
/// and [`Generator::new`], writing one `<package>.rs` per proto package to
/// `OUT_DIR`. `configure` adjusts the prost-build config first (e.g.
/// `bytes`, `extern_path`, `type_attribute`). Prints `rerun-if-changed`
/// for every file given.
///
/// # Errors
/// A proto that does not parse or resolve, or an IO error writing output.
pub fn compile(
    protos: &[impl AsRef<Path>],
    includes: &[impl AsRef<Path>],
    configure: impl FnOnce(&mut prost_build::Config),
) -> Result<(), Box<dyn Error>> {
    for p in protos {
        println!("cargo:rerun-if-changed={}", p.as_ref().display());
    }
    let fds = protox::compile(protos, includes)?;
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(Generator::new()));
    configure(&mut config);
    config.compile_fds(fds)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(upper_snake("Task"), "TASK");
        assert_eq!(upper_snake("ShimV1"), "SHIM_V1");
        assert_eq!(upper_snake("TTRPCEvents"), "TTRPCEVENTS");
        assert_eq!(m_snake("EchoService"), "echo_service");
    }
}
