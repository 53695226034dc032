//! Pins the exact JSON `state`, `pids`, `stats` and `connect` print (and,
//! through [`check`], what `decode` prints: `decode.rs`) (Go's `json.MarshalIndent(v, "", "    ")` of the gogo structs, as
//! `ctr shim` prints them) against files in `cli/tests/golden/`. The inputs
//! are wire bytes built field by field, so they do not depend on how the
//! printer decodes them. `SHIMCTL_BLESS=1 cargo test -p shimctl golden`
//! rewrites the files (review the diff).

use std::ops::RangeInclusive;
use std::path::PathBuf;

use crate::schema::{self, MessageId};

/// A protobuf message being encoded, field by field.
#[derive(Default, Clone)]
struct W(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl W {
    fn key(mut self, num: u32, wire: u8) -> Self {
        varint(&mut self.0, u64::from(num) << 3 | u64::from(wire));
        self
    }
    fn u(self, num: u32, v: u64) -> Self {
        let mut w = self.key(num, 0);
        varint(&mut w.0, v);
        w
    }
    /// Every field in `nums` as a varint, each with its own value.
    fn us(self, nums: RangeInclusive<u32>, base: u64) -> Self {
        nums.fold(self, |w, n| w.u(n, base + u64::from(n)))
    }
    fn bytes(self, num: u32, b: &[u8]) -> Self {
        let mut w = self.key(num, 2);
        varint(&mut w.0, b.len() as u64);
        w.0.extend_from_slice(b);
        w
    }
    fn s(self, num: u32, s: &str) -> Self {
        self.bytes(num, s.as_bytes())
    }
    fn m(self, num: u32, m: &Self) -> Self {
        self.bytes(num, &m.0)
    }
    fn f64(self, num: u32, v: f64) -> Self {
        let mut w = self.key(num, 1);
        w.0.extend_from_slice(&v.to_le_bytes());
        w
    }
    fn packed(self, num: u32, vs: &[u64]) -> Self {
        let mut body = Vec::new();
        for v in vs {
            varint(&mut body, *v);
        }
        self.bytes(num, &body)
    }
    fn any(self, num: u32, type_url: &str, value: &[u8]) -> Self {
        self.m(num, &Self::default().s(1, type_url).bytes(2, value))
    }
}

/// `google.protobuf.Timestamp`.
fn ts(seconds: i64, nanos: i32) -> W {
    W::default().u(1, seconds as u64).u(2, nanos as u32 as u64)
}

/// Go's zero time, which 1.6 shims send for "not exited".
fn go_zero() -> W {
    ts(-62_135_596_800, 0)
}

const DETAILS: &str = "types.containerd.io/containerd.runc.v1.ProcessDetails";
const CG1: &str = "type.googleapis.com/io.containerd.cgroups.v1.Metrics";
const CG2: &str = "type.googleapis.com/io.containerd.cgroups.v2.Metrics";

fn cgroups_v1() -> W {
    let hugetlb = |size: &str, base| W::default().us(1..=3, base).s(4, size);
    let blk = |op: &str, base| W::default().s(1, op).s(2, "sda").us(3..=5, base);
    let mut blkio = W::default();
    for n in 1..=8 {
        blkio = blkio
            .m(n, &blk("Read", u64::from(n) * 100))
            .m(n, &blk("Write", u64::from(n) * 1000));
    }
    let mem_entry = |base| W::default().us(1..=4, base);
    let rdma = |dev: &str| W::default().s(1, dev).u(2, 3).u(3, 4);
    W::default()
        .m(1, &hugetlb("2MB", 10))
        .m(1, &hugetlb("1GB", 20))
        .m(2, &W::default().u(1, 3).u(2, 4096))
        .m(
            3,
            &W::default()
                .m(
                    1,
                    &W::default()
                        .us(1..=3, 1_000_000)
                        .packed(4, &[5, 0, 7, u64::MAX]),
                )
                .m(2, &W::default().us(1..=3, 50)),
        )
        .m(
            4,
            &W::default()
                .us(1..=32, 1 << 40)
                .m(33, &mem_entry(100))
                .m(34, &mem_entry(200))
                .m(35, &mem_entry(300))
                .m(36, &W::default()),
        )
        .m(5, &blkio)
        .m(6, &W::default().m(1, &rdma("mlx0")).m(2, &rdma("mlx1")))
        .m(7, &W::default().s(1, "eth0").us(2..=9, 7))
        .m(7, &W::default().s(1, "lo"))
        .m(8, &W::default().us(1..=5, 0))
        .m(9, &W::default().u(1, 0).u(2, 1).u(3, 2))
}

fn cgroups_v2() -> W {
    let psi_data =
        |a: f64, b: f64, c: f64, total| W::default().f64(1, a).f64(2, b).f64(3, c).u(4, total);
    let psi = W::default()
        .m(1, &psi_data(0.25, 1.5, 12.34, 7))
        .m(2, &psi_data(0.0, 1e-7, 1e16, 0));
    let psi_odd = W::default().m(1, &psi_data(100.0, 123_456_789.125, 5e-324, 1));
    W::default()
        .m(1, &W::default().u(1, 2).u(2, 0))
        .m(2, &W::default().us(1..=6, 1000).m(7, &psi).us(8..=9, 0))
        .m(4, &W::default().us(1..=37, 1 << 20).m(38, &psi_odd))
        .m(
            5,
            &W::default()
                .m(1, &W::default().s(1, "mlx0").u(2, 1).u(3, 2))
                .m(2, &W::default().s(1, "mlx0").u(2, 10)),
        )
        .m(
            6,
            &W::default()
                .m(1, &W::default().us(1..=6, 8))
                .m(1, &W::default().u(1, 259))
                .m(2, &W::default()),
        )
        .m(7, &W::default().u(1, 0).u(2, 10).s(3, "2MB").u(4, 1))
        .m(8, &W::default().us(1..=6, 0))
        .m(9, &W::default().s(1, "eth0").us(2..=9, 1 << 33))
}

/// Every pinned case: a name (the golden file), the type and the bytes.
pub(super) fn cases() -> Vec<(&'static str, MessageId, Vec<u8>)> {
    let stdio = |w: W| {
        w.s(5, "/run/s/stdin")
            .s(6, "/tmp/out \"quoted\"\n")
            .s(7, "/tmp/é")
    };
    let details = W::default().s(1, "e1");
    vec![
        (
            "state_v2_created",
            schema::TASK_STATE,
            stdio(W::default().s(1, "c1").s(2, "/run/b/c1").u(3, 4242).u(4, 1))
                .m(10, &go_zero())
                .0,
        ),
        (
            "state_v2_exec_stopped",
            schema::TASK_STATE,
            W::default()
                .s(1, "c1")
                .s(2, "/run/b/c1")
                .u(3, 77)
                .u(4, 3)
                .u(8, 1)
                .u(9, 143)
                .m(10, &ts(1_764_806_400, 123_456_000))
                .s(11, "e1")
                .0,
        ),
        ("state_v2_empty", schema::TASK_STATE, Vec::new()),
        (
            "state_v2_unknown_fields_and_merge",
            schema::TASK_STATE,
            // Unknown fields skipped; repeated scalars: last wins; a
            // message twice is merged.
            W::default()
                .s(1, "first")
                .u(99, 5)
                .s(1, "second")
                .u(4, 2)
                .m(10, &W::default().u(1, 1_000_000_000))
                .bytes(100, b"junk")
                .m(10, &W::default().u(2, 5))
                .0,
        ),
        (
            "state_v2_truncated",
            schema::TASK_STATE,
            vec![0x0a, 0x05, b'c'],
        ),
        (
            "state_v2_bad_utf8",
            schema::TASK_STATE,
            vec![0x0a, 0x01, 0xff],
        ),
        (
            "state_v2_wrong_wire_type",
            schema::TASK_STATE,
            W::default().s(3, "not a pid").0,
        ),
        (
            "state_v1_running",
            schema::V1_STATE,
            stdio(W::default().s(1, "c1").s(2, "/run/b/c1").u(3, 4242).u(4, 2))
                .u(8, 1)
                .m(10, &go_zero())
                .0,
        ),
        (
            "pids_v2",
            schema::TASK_PIDS,
            W::default()
                .m(1, &W::default().u(1, 4242))
                .m(1, &W::default().u(1, 4300).any(2, DETAILS, &details.0))
                .m(
                    1,
                    &W::default()
                        .u(1, 4301)
                        .any(2, "example.com/Unknown", b"\x01\x02\xff"),
                )
                .m(
                    1,
                    &W::default().u(1, 4302).any(2, DETAILS, b"\x0a\x09short"),
                )
                .m(1, &W::default().any(2, "", b""))
                .m(
                    1,
                    &W::default()
                        .u(1, 1)
                        .any(2, "containerd.runc.v1.ProcessDetails", b""),
                )
                .0,
        ),
        (
            "pids_v1",
            schema::V1_LIST_PIDS,
            W::default()
                .m(1, &W::default().u(1, 4242))
                .m(1, &W::default().u(1, 4300).any(2, DETAILS, &details.0))
                .0,
        ),
        ("pids_empty", schema::TASK_PIDS, Vec::new()),
        (
            "stats_cgroups_v1",
            schema::TASK_STATS,
            W::default().any(1, CG1, &cgroups_v1().0).0,
        ),
        (
            "stats_cgroups_v2",
            schema::TASK_STATS,
            W::default().any(1, CG2, &cgroups_v2().0).0,
        ),
        (
            "stats_cgroups_v2_empty",
            schema::TASK_STATS,
            W::default().any(1, CG2, b"").0,
        ),
        (
            "stats_unknown_and_broken",
            schema::TASK_STATS,
            // Two Anys merge: the type_url of the first, the bytes of the
            // second, which do not decode as v1 Metrics (base64 then).
            W::default()
                .any(1, CG1, b"")
                .m(1, &W::default().bytes(2, b"\x0a\x05\x22\x03\xff\xfe\xfd"))
                .0,
        ),
        (
            "stats_other_type",
            schema::TASK_STATS,
            W::default().any(1, "example.com/x.Y", b"hello world").0,
        ),
        ("stats_none", schema::TASK_STATS, Vec::new()),
        (
            "connect",
            schema::TASK_CONNECT,
            W::default().u(1, 4000).u(2, 4242).s(3, "1.6.20").0,
        ),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `got` with the golden file `name`, or writes it when blessing.
pub(crate) fn check(name: &str, got: &str) -> Result<(), String> {
    let path = golden_dir().join(name);
    if std::env::var_os("SHIMCTL_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).map_err(|e| e.to_string())?;
        std::fs::write(&path, got).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let want = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if want == got {
        Ok(())
    } else {
        Err(format!("{name} differs:\n--- want\n{want}\n--- got\n{got}"))
    }
}

#[test]
fn responses_print_as_pinned() {
    let mut failures = Vec::new();
    for (name, root, bytes) in cases() {
        let got = super::to_pretty(root, &bytes).unwrap_or_else(|_| "error\n".into());
        if let Err(e) = check(&format!("{name}.json"), &got) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
