//! Calls the example server from several threads over one connection:
//!
//!     cargo run -p ttrpc-std --example client -- unix:///tmp/greeter.sock world
//!
//! A slow `Sleep` runs alongside the `Hello` calls and does not hold them
//! up; a second `Sleep` is given too short a deadline and fails.

use std::time::{Duration, Instant};

use ttrpc_std::{CallOptions, Client, Error};

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let address = args
        .next()
        .unwrap_or_else(|| "unix:///tmp/greeter.sock".into());
    let name = args.next().unwrap_or_else(|| "world".into());

    let client = Client::connect(&address)?;
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            let r = client.call_raw("demo.Greeter", "Sleep", b"1000", &CallOptions::default());
            println!("[{:?}] Sleep(1000): {:?}", start.elapsed(), r.map(text));
        });
        for i in 0..4 {
            let (client, name) = (&client, &name);
            s.spawn(move || {
                let mut options = CallOptions::with_timeout(Duration::from_secs(5));
                options.metadata.append("user", format!("thread-{i}"));
                let r = client.call_raw("demo.Greeter", "Hello", name.as_bytes(), &options);
                println!("[{:?}] Hello: {:?}", start.elapsed(), r.map(text));
            });
        }
        s.spawn(|| {
            let options = CallOptions::with_timeout(Duration::from_millis(100));
            let r = client.call_raw("demo.Greeter", "Sleep", b"500", &options);
            println!(
                "[{:?}] Sleep(500) with a 100 ms deadline: {r:?}",
                start.elapsed()
            );
        });
    });
    Ok(())
}

fn text(b: bytes::Bytes) -> String {
    String::from_utf8_lossy(&b).into_owned()
}
