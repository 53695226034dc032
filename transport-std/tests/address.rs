//! Address parsing, connecting and binding.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;

use ttrpc_std::{Address, Error};
use ttrpc_testkit::TempDir;

#[test]
fn parses_each_form() {
    assert_eq!(
        Address::parse("unix:///run/x.sock").unwrap(),
        Address::Path(PathBuf::from("/run/x.sock"))
    );
    assert_eq!(
        Address::parse("@my-name").unwrap(),
        Address::Abstract(b"my-name".to_vec())
    );
    // A bare string that is not a socket file: Go's "\x00"+NAME.
    let legacy = Address::parse("/containerd-shim/ns/id/shim.sock").unwrap();
    assert_eq!(
        legacy,
        Address::LegacyAbstract("/containerd-shim/ns/id/shim.sock".into())
    );
    assert_eq!(
        legacy.abstract_name().unwrap(),
        b"/containerd-shim/ns/id/shim.sock\0"
    );
    assert_eq!(Address::parse("@x").unwrap().abstract_name().unwrap(), b"x");
    assert_eq!(Address::parse("unix:///a").unwrap().abstract_name(), None);

    // A bare string naming an existing socket file is that file; a regular
    // file is not a socket, so the name stays abstract.
    let dir = TempDir::new("ttrpc-addr").unwrap();
    let sock = dir.path().join("s.sock");
    let _l = UnixListener::bind(&sock).unwrap();
    let bare = sock.to_str().unwrap();
    assert_eq!(Address::parse(bare).unwrap(), Address::Path(sock.clone()));
    let file = dir.path().join("plain");
    fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Address::parse(file.to_str().unwrap()).unwrap(),
        Address::LegacyAbstract(_)
    ));

    for bad in ["", "unix://", "@", "a\0b"] {
        assert!(
            matches!(Address::parse(bad), Err(Error::InvalidAddress { .. })),
            "{bad:?}"
        );
    }
    assert_eq!(
        Address::parse("unix:///a b").unwrap().to_string(),
        "unix:///a b"
    );
}

fn unique(tag: &str) -> String {
    format!("ttrpc-std-test-{tag}-{}", std::process::id())
}

#[test]
fn legacy_abstract_dials_what_go_listens_on() {
    // What containerd-shim (v1) does: net.Listen("unix", "\x00"+NAME),
    // which binds NAME plus a trailing NUL.
    let name = unique("legacy");
    let mut kernel_name = name.clone().into_bytes();
    kernel_name.push(0);
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&kernel_name).unwrap()).unwrap();
    let mut client = Address::parse(&name).unwrap().connect().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"hi").unwrap();
    let mut buf = [0; 2];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
    // The `@` form is the name without the NUL: a different socket.
    let err = Address::parse(&format!("@{name}")).unwrap().connect();
    assert!(err.is_err(), "@NAME must not reach NAME\\0");
}

#[test]
fn servers_bind_abstract_only_when_asked() {
    let name = unique("bind");
    let err = Address::parse(&name).unwrap().bind().unwrap_err();
    assert!(matches!(err, Error::AbstractRefused(_)), "{err}");
    assert!(err.to_string().contains("CVE-2020-15257"));

    let listener = Address::parse(&format!("@{name}")).unwrap().bind().unwrap();
    assert_eq!(listener.path(), None);
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    UnixStream::connect_addr(&addr).expect("connect to \\0NAME");
    drop(listener);
}

#[test]
fn bind_path_is_0600_and_removed_on_drop() {
    let dir = TempDir::new("ttrpc-bind").unwrap();
    let path = dir.path().join("s.sock");
    let listener = Address::Path(path.clone()).bind().unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(listener.path(), Some(path.as_path()));
    UnixStream::connect(&path).expect("it listens");
    drop(listener);
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn stale_socket_is_replaced_and_live_one_refused() {
    let dir = TempDir::new("ttrpc-stale").unwrap();
    let path = dir.path().join("s.sock");
    // A socket file nobody listens on (std does not unlink on drop).
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let listener = Address::Path(path.clone())
        .bind()
        .expect("stale socket replaced");

    let err = Address::Path(path.clone()).bind().unwrap_err();
    assert!(matches!(&err, Error::AddrInUse(p) if *p == path), "{err}");
    // The live socket is untouched.
    UnixStream::connect(&path).expect("still listening");
    drop(listener);
}

#[test]
fn non_socket_path_is_refused_and_kept() {
    let dir = TempDir::new("ttrpc-nonsock").unwrap();
    let path = dir.path().join("important.txt");
    fs::write(&path, b"keep me").unwrap();
    let err = Address::Path(path.clone()).bind().unwrap_err();
    assert!(matches!(&err, Error::NotASocket(p) if *p == path), "{err}");
    assert_eq!(fs::read(&path).unwrap(), b"keep me");

    let sub = dir.path().join("a-dir");
    fs::create_dir(&sub).unwrap();
    assert!(matches!(
        Address::Path(sub.clone()).bind(),
        Err(Error::NotASocket(_))
    ));
    assert!(sub.is_dir());
}

#[test]
fn connect_errors_name_the_address() {
    let err = Address::parse("unix:///nonexistent/dir/x.sock")
        .unwrap()
        .connect()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unix:///nonexistent/dir/x.sock"), "{text}");
}
