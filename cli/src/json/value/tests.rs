//! Unit and property tests of `json::Value`: the parser on valid, broken
//! and hostile input (deep nesting, lone surrogates, huge numbers), the
//! writer, and the accessors.

use proptest::prelude::*;

use super::*;

fn parse(s: &str) -> Result<Value, ParseError> {
    Value::parse(s.as_bytes())
}

fn err_at(s: &[u8]) -> (usize, &'static str) {
    let e = Value::parse(s).unwrap_err();
    (e.offset, e.what)
}

#[test]
fn parses_a_config_json_process() {
    let doc = br#" {"process": {"terminal": false, "user": {"uid": 0, "gid": 0,
        "additionalGids": [10]}, "args": ["sh", "-c", "echo \"hi\"\n"],
        "env": ["PATH=/bin"], "cwd": "/", "oomScoreAdj": -1000,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true, "x": null, "f": 0.5e1}} "#;
    let v = Value::parse(doc).unwrap();
    let p = v.get("process").unwrap();
    assert_eq!(p.get("terminal").unwrap().as_bool(), Some(false));
    assert_eq!(p.get("user").unwrap().get("uid").unwrap().as_u64(), Some(0));
    let args: Vec<&str> = p
        .get("args")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["sh", "-c", "echo \"hi\"\n"]);
    assert_eq!(p.get("oomScoreAdj").unwrap().as_i64(), Some(-1000));
    assert_eq!(p.get("oomScoreAdj").unwrap().as_u64(), None);
    assert_eq!(p.get("x"), Some(&Value::Null));
    assert_eq!(p.get("f").unwrap().to_string(), "0.5e1");
    assert_eq!(p.get("missing"), None);
    assert_eq!(p.as_object().unwrap().len(), 10);
    assert_eq!(Value::Null.get("x"), None);
}

#[test]
fn first_duplicate_wins_and_set_replaces_or_appends() {
    let mut v = parse(r#"{"a":1,"a":2}"#).unwrap();
    assert_eq!(v.get("a").unwrap().as_u64(), Some(1));
    v.set("a", Value::from("x")).unwrap();
    v.set("b", Value::Array(vec![true.into(), 7u32.into()]))
        .unwrap();
    assert_eq!(v.to_string(), r#"{"a":"x","a":2,"b":[true,7]}"#);
    *v.get_mut("b").unwrap() = Value::Null;
    assert_eq!(v.remove("a"), Some(Value::from("x")));
    assert_eq!(v.to_string(), r#"{"b":null}"#);
    assert_eq!(v.remove("a"), None);
    assert_eq!(Value::Null.set("a", Value::Null), Err(NotAnObject));
    assert!(Value::Array(vec![]).get_mut("a").is_none());
}

#[test]
fn numbers_are_kept_as_written() {
    for text in [
        "0",
        "-0",
        "12",
        "-3.25",
        "1e3",
        "1E+3",
        "25e-1",
        "1.0",
        "1e-400",
        "1e400",
        "-1e309",
        "18446744073709551615",
        "99999999999999999999999999999999",
    ] {
        let v = parse(text).unwrap();
        assert!(matches!(&v, Value::Number(_)), "{text}");
        assert_eq!(v.to_string(), text);
    }
    for text in [
        "01", "-", "+1", ".5", "1.", "1e", "1e+", "0x10", "Infinity", "NaN", "--1", "1.e3", "-.5",
    ] {
        assert!(parse(text).is_err(), "{text}");
    }
    let long = "9".repeat(400);
    assert_eq!(parse(&long).unwrap().to_string(), long);
    let long = format!("0.{}", "1".repeat(10_000));
    assert!(parse(&long).is_ok());

    // Integers: written as integers, exact to the type's bounds (an
    // rlimit's u64 "unlimited" included).
    assert_eq!(
        parse("18446744073709551615").unwrap().as_u64(),
        Some(u64::MAX)
    );
    assert_eq!(parse("18446744073709551616").unwrap().as_u64(), None);
    assert_eq!(
        parse("9007199254740993").unwrap().as_u64(),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(
        parse("-9223372036854775808").unwrap().as_i64(),
        Some(i64::MIN)
    );
    assert_eq!(parse("-9223372036854775809").unwrap().as_i64(), None);
    assert_eq!(parse("-1").unwrap().as_u64(), None);
    assert_eq!(parse("-0").unwrap().as_i64(), Some(0));
    for not_integer in ["1.5", "1.0", "1e3", "\"1\"", "true"] {
        assert_eq!(parse(not_integer).unwrap().as_u64(), None, "{not_integer}");
        assert_eq!(parse(not_integer).unwrap().as_i64(), None, "{not_integer}");
    }

    // Built from integers.
    assert_eq!(Value::from(4_294_967_295u32).to_string(), "4294967295");
    assert_eq!(Value::from(-1000i32).to_string(), "-1000");
    assert_eq!(Value::from(0u32).as_u64(), Some(0));
}

/// An OCI process with every kind of number passes through parse and
/// write unchanged, byte for byte where it was compact.
#[test]
fn oci_numbers_survive_a_round_trip() {
    let doc = r#"{"rlimits":[{"type":"RLIMIT_NOFILE","hard":18446744073709551615,"soft":1048576}],"oomScoreAdj":-999,"user":{"uid":4294967294},"x":1.5e-300}"#;
    assert_eq!(parse(doc).unwrap().to_string(), doc);
}

#[test]
fn strings_and_escapes() {
    let v = parse(r#""a\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\ud83d\ude00é😀""#).unwrap();
    assert_eq!(v.as_str(), Some("a\"\\/\u{8}\u{c}\n\r\tAé€😀é😀"));
    assert_eq!(
        Value::from("q\"b\\n\n\u{1}\u{1f}\u{7f}é😀").to_string(),
        "\"q\\\"b\\\\n\\n\\u0001\\u001f\u{7f}é😀\""
    );
    // Lone surrogates, in either order, at the end, or half-paired.
    for s in [
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud800x""#,
        r#""\ud800\n""#,
        r#""\ud800\u0041""#,
        r#""\ude00\ud83d""#,
    ] {
        assert_eq!(
            err_at(s.as_bytes()),
            (1, "lone surrogate in \\u escape"),
            "{s}"
        );
    }
    assert_eq!(err_at(br#""\u12""#).1, "expected four hex digits after \\u");
    assert_eq!(err_at(br#""\x""#), (2, "invalid escape"));
    assert_eq!(err_at(b"\"a\nb\""), (2, "control character in string"));
    assert_eq!(err_at(b"\"ab\xff\""), (3, "invalid UTF-8"));
    assert_eq!(err_at(b"\"\\n\xc3\""), (3, "invalid UTF-8"));
    assert_eq!(err_at(b"\"\xed\xa0\x80\""), (1, "invalid UTF-8")); // UTF-8 surrogate
    assert_eq!(err_at(b"\"abc"), (4, "unterminated string"));
    assert_eq!(err_at(b"\"abc\\"), (5, "unterminated string"));
}

#[test]
fn structure_errors() {
    assert_eq!(err_at(b""), (0, "unexpected end of input"));
    assert_eq!(err_at(b"  "), (2, "unexpected end of input"));
    assert_eq!(err_at(b"[1,]"), (3, "expected a value"));
    assert_eq!(err_at(b"[1 2]"), (3, "expected ',' or ']'"));
    assert_eq!(err_at(b"{\"a\" 1}"), (5, "expected ':'"));
    assert_eq!(err_at(b"{\"a\":1,}"), (7, "expected a string key"));
    assert_eq!(err_at(b"{a:1}"), (1, "expected a string key"));
    assert_eq!(err_at(b"{\"a\":1]"), (6, "expected ',' or '}'"));
    assert_eq!(err_at(b"[1] x"), (4, "trailing characters after the value"));
    assert_eq!(err_at(b"1 2"), (2, "trailing characters after the value"));
    assert_eq!(err_at(b"tru"), (0, "expected a value"));
    assert_eq!(err_at(b"nul"), (0, "expected a value"));
    assert_eq!(err_at(b"\xef\xbb\xbf{}"), (0, "expected a value"));
    assert_eq!(err_at(b"// c\n{}"), (0, "expected a value"));
    assert_eq!(err_at(b"{\"a\":"), (5, "unexpected end of input"));
    assert_eq!(err_at(b"[[1,[2"), (6, "expected ',' or ']'"));
    assert!(parse(" \t\r\n[ ] \n").is_ok());
    assert!(parse("{ \"a\" : [ { } , [ ] , \"\" ] }").is_ok());
}

#[test]
fn truncated_input_is_an_error_at_every_cut() {
    let doc = r#"{"a":[1,-2.5e3,true,false,null,"x\u00e9\ud83d\ude00"],"b":{"c":{}}}"#;
    assert!(parse(doc).is_ok());
    for cut in 0..doc.len() {
        assert!(
            Value::parse(&doc.as_bytes()[..cut]).is_err(),
            "{:?}",
            &doc[..cut]
        );
    }
}

#[test]
fn nesting_is_bounded() {
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = "[".repeat(MAX_DEPTH + 1);
    assert_eq!(
        err_at(deep.as_bytes()),
        (MAX_DEPTH, "nested deeper than 128")
    );
    let objects = "{\"a\":".repeat(MAX_DEPTH) + "{";
    assert_eq!(err_at(objects.as_bytes()).1, "nested deeper than 128");
    // Far deeper than any stack would take: still a typed error.
    let huge = "[".repeat(10_000_000);
    assert_eq!(err_at(huge.as_bytes()).1, "nested deeper than 128");
    let mixed = "[{\"k\":".repeat(1_000_000);
    assert_eq!(err_at(mixed.as_bytes()).1, "nested deeper than 128");
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(|n| parse(&format!("{n:?}")).unwrap()),
        any::<i64>().prop_map(|n| parse(&n.to_string()).unwrap()),
        any::<u64>().prop_map(|n| parse(&n.to_string()).unwrap()),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8).prop_map(Value::Object),
        ]
    })
}

proptest! {
    #[test]
    fn written_values_parse_back_equal(v in value()) {
        let text = v.to_string();
        prop_assert_eq!(Value::parse(text.as_bytes()), Ok(v), "{}", text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Value::parse(&bytes);
    }

    #[test]
    fn json_like_bytes_never_panic(
        bytes in prop::collection::vec(
            prop::sample::select(b"[]{}\",:\\u0123456789abcdefABCDEF-+.eEtrunlsx \n\xc3\xa9\xed".to_vec()),
            0..64,
        )
    ) {
        if let Ok(v) = Value::parse(&bytes) {
            // Whatever parses writes out as something that parses equal.
            prop_assert_eq!(Value::parse(v.to_string().as_bytes()), Ok(v));
        }
    }
}
