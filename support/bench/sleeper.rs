//! The RSS floor: a process that does nothing but sleep. `run.sh` builds it
//! static with plain `rustc` (`-C target-feature=+crt-static`), size-optimised.
fn main() {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
