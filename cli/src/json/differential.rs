//! The table-driven printer against the oracle (the former prost + serde
//! output, `oracle.rs`) on generated wire bytes: valid messages of every
//! printed type with every field kind, merged and packed fields, unknown
//! fields and groups, known and unknown `Any` payloads, then the same bytes
//! broken (a byte changed, cut short, a wrong wire type). Both must print
//! the same bytes, or both refuse.

use proptest::prelude::*;

use crate::schema::{self, Kind, MessageId};

/// A deterministic generator (xorshift64*), so proptest shrinks the seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, number: u32, wire: u8) {
    varint(out, u64::from(number) << 3 | u64::from(wire));
}

fn len_field(out: &mut Vec<u8>, number: u32, body: &[u8]) {
    key(out, number, 2);
    varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn int_value(g: &mut Gen) -> u64 {
    const EDGES: [u64; 10] = [
        0,
        1,
        127,
        128,
        u32::MAX as u64,
        (1 << 32) + 5,
        1 << 32,
        u64::MAX,
        (-1i64) as u64,
        (i32::MIN as i64) as u64,
    ];
    if g.chance(50) {
        EDGES[g.below(EDGES.len() as u64) as usize]
    } else {
        g.next() >> g.below(64)
    }
}

fn f64_value(g: &mut Gen) -> u64 {
    const EDGES: [f64; 10] = [
        0.0,
        -0.0,
        0.25,
        1e16,
        1e-7,
        123.456,
        f64::NAN,
        f64::INFINITY,
        5e-324,
        100.0,
    ];
    if g.chance(60) {
        EDGES[g.below(EDGES.len() as u64) as usize].to_bits()
    } else {
        g.next()
    }
}

fn string_value(g: &mut Gen) -> String {
    const PARTS: [&str; 8] = [
        "",
        "c1",
        "é",
        "😀",
        "a\"b\\c",
        "\n\t\u{1}",
        "/run/x",
        "\u{7f}",
    ];
    (0..g.below(3))
        .map(|_| PARTS[g.below(PARTS.len() as u64) as usize])
        .collect()
}

/// An unknown field (numbers above every field the table has).
fn unknown_field(g: &mut Gen, out: &mut Vec<u8>, depth: u32) {
    let number = 60 + g.below(3) as u32;
    any_wire(g, number, out, depth);
}

/// Field `number` with a well-formed value of a random wire type.
fn any_wire(g: &mut Gen, number: u32, out: &mut Vec<u8>, depth: u32) {
    match g.below(5) {
        0 => {
            key(out, number, 0);
            varint(out, g.next());
        }
        1 => {
            key(out, number, 1);
            out.extend_from_slice(&g.next().to_le_bytes());
        }
        2 => len_field(out, number, &g.next().to_le_bytes()[..g.below(8) as usize]),
        3 => {
            key(out, number, 5);
            out.extend_from_slice(&g.next().to_le_bytes()[..4]);
        }
        _ => {
            key(out, number, 3);
            if depth < 3 {
                unknown_field(g, out, depth + 1);
            }
            key(out, number, 4);
        }
    }
}

fn any_value(g: &mut Gen, depth: u32) -> Vec<u8> {
    const TYPES: [&str; 7] = [
        "types.containerd.io/containerd.runc.v1.ProcessDetails",
        "containerd.runc.v1.ProcessDetails",
        "type.googleapis.com/io.containerd.cgroups.v1.Metrics",
        "io.containerd.cgroups.v2.Metrics",
        "x/io.containerd.cgroups.v2.Metrics",
        "example.com/Other",
        "",
    ];
    let type_url = TYPES[g.below(TYPES.len() as u64) as usize];
    let payload = match schema::any_type(type_url) {
        Some(id) if g.chance(85) => message(g, id, depth + 1),
        _ => g.next().to_le_bytes()[..g.below(9) as usize].to_vec(),
    };
    let mut out = Vec::new();
    if !type_url.is_empty() || g.chance(50) {
        len_field(&mut out, 1, type_url.as_bytes());
    }
    if g.chance(90) {
        len_field(&mut out, 2, &payload);
    }
    out
}

fn field(g: &mut Gen, f: &schema::Field, out: &mut Vec<u8>, depth: u32) {
    let n = f.number();
    match f.kind() {
        Kind::Bool | Kind::U32 | Kind::U64 | Kind::I32 | Kind::I64 => {
            if f.is_repeated() && g.chance(50) {
                let mut body = Vec::new();
                for _ in 0..g.below(4) {
                    varint(&mut body, int_value(g));
                }
                len_field(out, n, &body);
            } else {
                key(out, n, 0);
                varint(out, int_value(g));
            }
        }
        Kind::F64 => {
            key(out, n, 1);
            out.extend_from_slice(&f64_value(g).to_le_bytes());
        }
        Kind::String | Kind::Bytes => len_field(out, n, string_value(g).as_bytes()),
        Kind::Message => {
            let body = if depth < 5 {
                message(g, f.message(), depth + 1)
            } else {
                Vec::new()
            };
            len_field(out, n, &body);
        }
        Kind::Any => len_field(out, n, &any_value(g, depth)),
        Kind::Timestamp => {
            let mut body = Vec::new();
            if g.chance(80) {
                key(&mut body, 1, 0);
                varint(&mut body, int_value(g));
            }
            if g.chance(60) {
                key(&mut body, 2, 0);
                varint(&mut body, int_value(g));
            }
            len_field(out, n, &body);
        }
    }
}

fn message(g: &mut Gen, id: MessageId, depth: u32) -> Vec<u8> {
    let fields = id.fields();
    let mut out = Vec::new();
    for _ in 0..g.below(if depth == 0 { 12 } else { 6 }) {
        if fields.is_empty() || g.chance(8) {
            unknown_field(g, &mut out, 0);
        } else if g.chance(3) {
            // A known field with any wire type, most likely the wrong one.
            let f = &fields[g.below(fields.len() as u64) as usize];
            any_wire(g, f.number(), &mut out, 0);
        } else {
            let f = &fields[g.below(fields.len() as u64) as usize];
            field(g, f, &mut out, depth);
        }
    }
    out
}

const ROOTS: [MessageId; 6] = [
    schema::TASK_STATE,
    schema::TASK_PIDS,
    schema::TASK_STATS,
    schema::TASK_CONNECT,
    schema::V1_STATE,
    schema::V1_LIST_PIDS,
];

fn check(root: MessageId, bytes: &[u8]) -> Result<(), TestCaseError> {
    let want = super::oracle::render(root, bytes);
    let got = super::to_pretty(root, bytes).ok();
    prop_assert_eq!(got, want, "{:?} {:02x?}", root, bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn printer_matches_the_oracle(
        root in 0..ROOTS.len(),
        seed in any::<u64>(),
        flip in proptest::option::weighted(0.3, (any::<usize>(), any::<u8>())),
        cut in proptest::option::weighted(0.2, any::<usize>()),
    ) {
        let root = ROOTS[root];
        let mut g = Gen(seed | 1);
        let mut bytes = message(&mut g, root, 0);
        check(root, &bytes)?;
        if let Some((at, xor)) = flip.filter(|_| !bytes.is_empty()) {
            let at = at % bytes.len();
            bytes[at] ^= xor.max(1);
            check(root, &bytes)?;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
            check(root, &bytes)?;
        }
    }

    #[test]
    fn random_bytes_as_the_oracle(root in 0..ROOTS.len(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check(ROOTS[root], &bytes)?;
    }
}

#[test]
fn deep_nesting_and_groups_as_the_oracle() {
    // Unknown groups nested past the recursion limit, and just within it.
    for depth in [98, 99, 100, 101, 150] {
        let mut bytes = Vec::new();
        for _ in 0..depth {
            key(&mut bytes, 61, 3);
        }
        for _ in 0..depth {
            key(&mut bytes, 61, 4);
        }
        for root in ROOTS {
            check(root, &bytes).unwrap();
        }
    }
    // A group closed by the wrong number; an end group alone.
    for bytes in [vec![0xeb, 0x03, 0xf4, 0x03], vec![0xec, 0x03]] {
        check(schema::TASK_STATE, &bytes).unwrap();
    }
}
