//! The `codegen` feature's generator, run on `tests/codegen/echo.proto`:
//! checks the generated items and signatures. (shimctl's build compiles and
//! exercises the generated code against real shims.)
#![cfg(feature = "codegen")]

use ttrpc_core::codegen::{Generator, prost_build, protox};

fn generate(generator: Generator) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ttrpc-codegen-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/codegen");
    let fds = protox::compile(["echo.proto"], [root]).unwrap();
    let mut config = prost_build::Config::new();
    config.out_dir(&dir);
    config.service_generator(Box::new(generator));
    config.compile_fds(fds).unwrap();
    let text = std::fs::read_to_string(dir.join("demo.echo.v1.rs")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // Whitespace-insensitive comparisons.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn generates_client_server_trait_and_registration() {
    let text = generate(Generator::new());
    for want in [
        r#"pub const ECHO_SERVICE_SERVICE: &str = "demo.echo.v1.EchoService";"#,
        "pub struct EchoServiceClient<C> {",
        "impl<C: ::ttrpc_core::stub::UnaryCall> EchoServiceClient<C> {",
        "pub fn say(&self, request: &EchoRequest, options: &::ttrpc_core::CallOptions) -> ::core::result::Result<EchoResponse, C::Error>",
        r#"::ttrpc_core::stub::call(&self.inner, self.service, "Say", request, options)"#,
        "Self { inner, service: ECHO_SERVICE_SERVICE }",
        "pub fn with_service(inner: C, service: &'static str) -> Self {",
        // Empty is `()` both ways; the wire name keeps the proto spelling.
        "pub fn ping(&self, request: &(), options: &::ttrpc_core::CallOptions) -> ::core::result::Result<(), C::Error>",
        r#"self.service, "CloseIO", request, options)"#,
        "pub trait EchoService: ::core::marker::Send + ::core::marker::Sync + 'static {",
        "fn say(&self, ctx: &::ttrpc_core::IncomingRequest, request: EchoRequest, reply: ::ttrpc_core::stub::Reply<EchoResponse>) {",
        r#"reply.error(::ttrpc_core::stub::unimplemented("Say"));"#,
        "fn close_io(&self, ctx: &::ttrpc_core::IncomingRequest, request: EchoRequest, reply: ::ttrpc_core::stub::Reply<()>)",
        "pub fn register_echo_service<S: EchoService + ?Sized>(registry: &mut ::ttrpc_core::Registry, service: ::std::sync::Arc<S>) {",
        r#"registry.register(ECHO_SERVICE_SERVICE, "Ping","#,
        "/// Says it back.",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn generates_typed_streams_for_each_kind() {
    let text = generate(Generator::new());
    for want in [
        // Client: a second impl block, for transports that open streams.
        "impl<C: ::ttrpc_core::stub::StreamCall> EchoServiceClient<C> {",
        "pub fn watch(&self, request: &EchoRequest, options: &::ttrpc_core::CallOptions) -> ::core::result::Result<::ttrpc_core::stub::TypedStream<C::Stream, EchoRequest, EchoResponse>, C::Error> {",
        r#"::ttrpc_core::stub::open(&self.inner, self.service, "Watch", ::ttrpc_core::StreamKind::ServerStreaming, Some(request), options)"#,
        "pub fn upload(&self, options: &::ttrpc_core::CallOptions) -> ::core::result::Result<::ttrpc_core::stub::TypedStream<C::Stream, EchoRequest, EchoResponse>, C::Error> {",
        r#"self.service, "Upload", ::ttrpc_core::StreamKind::ClientStreaming, None, options)"#,
        "pub fn chat(&self, options: &::ttrpc_core::CallOptions)",
        r#"self.service, "Chat", ::ttrpc_core::StreamKind::Bidirectional, None, options)"#,
        "/// Takes many.",
        // Server: stream methods on the trait, defaulting to Unimplemented.
        "fn watch(&self, ctx: &::ttrpc_core::IncomingRequest, request: EchoRequest, stream: ::ttrpc_core::stub::ServerStreamOf<EchoRequest, EchoResponse>) {",
        r#"stream.respond(::core::result::Result::Err(::ttrpc_core::stub::unimplemented("Watch")));"#,
        "fn upload(&self, ctx: &::ttrpc_core::IncomingRequest, stream: ::ttrpc_core::stub::ServerStreamOf<EchoRequest, EchoResponse>) {",
        "fn chat(&self, ctx: &::ttrpc_core::IncomingRequest, stream: ::ttrpc_core::stub::ServerStreamOf<EchoRequest, EchoResponse>) {",
        // Registration: stream methods go to register_stream.
        r#"registry.register_stream(ECHO_SERVICE_SERVICE, "Watch", move |req: ::ttrpc_core::IncomingRequest, st: ::ttrpc_core::ServerStream| {"#,
        "::ttrpc_core::stub::serve_stream(req, st, |ctx, m: EchoRequest, st: ::ttrpc_core::stub::ServerStreamOf<EchoRequest, EchoResponse>| s.watch(ctx, m, st));",
        r#"registry.register_stream(ECHO_SERVICE_SERVICE, "Upload","#,
        "s.upload(&req, ::ttrpc_core::stub::ServerStreamOf::new(st));",
        "s.chat(&req, ::ttrpc_core::stub::ServerStreamOf::new(st));",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // Unary methods stay in the UnaryCall block, streams out of it.
    let unary_block = text
        .split("impl<C: ::ttrpc_core::stub::UnaryCall> EchoServiceClient<C> {")
        .nth(1)
        .and_then(|rest| rest.split("impl<C: ::ttrpc_core::stub::StreamCall>").next())
        .unwrap();
    assert!(unary_block.contains("pub fn say("));
    assert!(!unary_block.contains("pub fn watch("));
    assert!(!text.contains(r#"registry.register(ECHO_SERVICE_SERVICE, "Watch""#));
}

#[test]
fn options_select_parts_and_core_path() {
    let text = generate(Generator::new().server(false).core_path("::my_rt::core"));
    assert!(text.contains("impl<C: ::my_rt::core::stub::UnaryCall> EchoServiceClient<C>"));
    assert!(!text.contains("pub trait EchoService"));
    assert!(!text.contains("register_echo_service"));
    let text = generate(Generator::new().client(false));
    assert!(!text.contains("EchoServiceClient"));
    assert!(text.contains("pub fn register_echo_service"));
}
