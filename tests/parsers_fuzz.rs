//! Fuzzing, in the suite with a fixed budget: the sxp reader, the config
//! parser, the xl.cfg reader and the disk-spec reader are fed arbitrary
//! text, text from their own alphabets, and the fixture files with random
//! edits. Each must answer (a config or an error), never panic or
//! overflow the stack. Longer runs: `PROPTEST_CASES=100000 cargo test
//! --release --test parsers_fuzz` (see README, Fuzzing).

use std::path::Path;

use domus::config::{self, xl};
use proptest::prelude::*;

/// Every fixture, sxp and xl.cfg, valid and invalid: seeds to mutate.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut out = Vec::new();
    for dir in ["valid", "invalid", "xl"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                out.push(t);
            }
        }
    }
    assert!(out.len() > 40, "the fixtures are missing: {}", out.len());
    out
}

/// Feed one text to every reader.
fn feed(text: &str) {
    let _ = domus::sxp::parse(text);
    let _ = config::parse_str(text, "fuzz");
    let _ = xl::parse_any(text, "fuzz");
    let _ = xl::syntax::parse(text);
    if let Some(line) = text.lines().next() {
        let _ = xl::parse_disk(line);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            "[()\\[\\]'\"\\\\=,:;#\n +.a-z0-9\u{0}\u{1b}\u{202e}]{1,4}"
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Edit::Duplicate(at, n)),
    ]
}

/// `at` within `s`, on a character boundary.
fn boundary(s: &str, at: usize) -> usize {
    if s.is_empty() {
        return 0;
    }
    let mut i = at % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, edits: &[Edit]) -> String {
    for e in edits {
        match e {
            Edit::Insert(at, t) => {
                let i = boundary(&s, *at);
                s.insert_str(i, t);
            }
            Edit::Delete(at, n) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n);
                if j > i {
                    s.replace_range(i..j, "");
                }
            }
            Edit::Duplicate(at, n) => {
                let i = boundary(&s, *at);
                let j = boundary(&s, i + n);
                if j > i {
                    let piece = s[i..j].to_string();
                    s.insert_str(j, &piece);
                }
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_text_is_answered(text in any::<String>()) {
        feed(&text);
    }

    #[test]
    fn text_from_the_readers_alphabets_is_answered(
        text in "[()\\[\\]'\"\\\\=,:;#\n\t +.a-z0-9_/@!-]{0,400}",
    ) {
        feed(&text);
        feed(&format!("(vm {text})"));
        feed(&format!("name = \"x\"\n{text}"));
        feed(&format!("disk = [ '{text}' ]\nname='x'"));
    }

    #[test]
    fn edited_fixtures_are_answered(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let all = seeds();
        let seed = all[pick.index(all.len())].clone();
        feed(&apply(seed, &edits));
    }
}

/// Deep and wide input, once each at full size: refused, no overflow.
#[test]
fn deep_and_wide_input_is_refused_without_overflow() {
    for text in [
        "(".repeat(1_000_000),
        format!("(vm {})", "(a ".repeat(200_000)),
        format!("a = {}", "[".repeat(1_000_000)),
        format!("disk = [{}]", "'x',".repeat(200_000)),
        format!("name = 'x'\n{}", "a = 1\n".repeat(100_000)),
    ] {
        feed(&text);
    }
}
