use std::fmt::Write as _;

use lexpr::Value;

/// Width a list may take on one line before the printer breaks it.
const LINE_WIDTH: usize = 78;
const INDENT: usize = 4;

/// xend printed atoms bare when they held only these characters.
pub fn is_plain_atom(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '.' | '-' | '_' | ':' | '/' | '~' | '@' | '+' | '=' | ',')
        })
}

/// Print one atom: bare when plain, otherwise double-quoted with escapes the
/// reader understands (`\n \t \\ \" \NNN`).
pub fn print_atom(s: &str) -> String {
    if is_plain_atom(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Octal: xend read the letters of a hex escape wrongly.
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\{:03o}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn atom_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Symbol(s) => Some(s.to_string()),
        Value::Keyword(s) => Some(s.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.into()),
        Value::Char(c) => Some(c.to_string()),
        Value::Nil | Value::Null => None,
        _ => None,
    }
}

fn items(v: &Value) -> Option<Vec<&Value>> {
    match v {
        Value::Nil | Value::Null => Some(Vec::new()),
        Value::Cons(_) => v.list_iter().map(|it| it.collect()),
        Value::Vector(items) => Some(items.iter().collect()),
        _ => None,
    }
}

/// Print a value on one line.
pub fn print_value(v: &Value) -> String {
    let mut out = String::new();
    one_line(v, &mut out);
    out
}

fn one_line(v: &Value, out: &mut String) {
    if let Some(list) = items(v) {
        out.push('(');
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            one_line(item, out);
        }
        out.push(')');
    } else {
        out.push_str(&print_atom(&atom_text(v).unwrap_or_default()));
    }
}

/// The canonical multi-line form: the top-level list puts each field on its
/// own line; nested lists stay on one line when they fit.
pub fn print_pretty(v: &Value) -> String {
    let mut out = String::new();
    pretty(v, 0, true, &mut out);
    out.push('\n');
    out
}

fn pretty(v: &Value, indent: usize, force_break: bool, out: &mut String) {
    let Some(list) = items(v) else {
        one_line(v, out);
        return;
    };
    let flat = print_value(v);
    let has_sublist = list.iter().skip(1).any(|i| items(i).is_some());
    // Lists of atoms never break; the top level always breaks its fields.
    if !has_sublist || (!force_break && indent + flat.len() <= LINE_WIDTH) {
        out.push_str(&flat);
        return;
    }
    out.push('(');
    let mut rest = list.iter();
    if let Some(head) = rest.next() {
        one_line(head, out);
    }
    for item in rest {
        out.push('\n');
        out.push_str(&" ".repeat(indent + INDENT));
        pretty(item, indent + INDENT, false, out);
    }
    out.push(')');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sxp::parse;

    #[test]
    fn quoting_round_trips_through_the_reader() {
        for s in [
            "web1",
            "console=hvc0 quiet",
            "it's \"x\"",
            "a\\b",
            "tab\there",
            "\u{1}",
            "",
            "ünï",
        ] {
            let printed = print_atom(s);
            let back = parse(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(back.atom(), Some(s), "{printed}");
        }
    }

    #[test]
    fn pretty_breaks_top_level_and_keeps_short_lists_flat() {
        let v = parse(
            "(vm (name web1) (image (linux (kernel /boot/vmlinuz) (args \"console=hvc0\"))))",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .to_value();
        assert_eq!(
            print_pretty(&v),
            "(vm\n    (name web1)\n    (image (linux (kernel /boot/vmlinuz) (args console=hvc0))))\n"
        );
    }
}
