//! Tab completion in the `:` palette: the word under the cursor (the last
//! one) is completed from what fits its place — verbs, domain names,
//! library configs, themes, shutdown reasons, device kinds — and what was
//! typed before it is kept.

/// What can be completed, gathered from the app's state.
#[derive(Debug, Default)]
pub struct Candidates {
    /// `(verb, synopsis)`.
    pub verbs: Vec<(&'static str, &'static str)>,
    pub domains: Vec<String>,
    /// Library file names without extension, and the domain names inside.
    pub library: Vec<String>,
    pub themes: Vec<String>,
}

/// The text with its last word completed, or `None` when nothing (more)
/// fits. Several candidates extend the word to what they share.
pub fn complete(text: &str, c: &Candidates) -> Option<String> {
    let ends_word = !text.is_empty() && !text.ends_with(' ');
    let words: Vec<&str> = text.split_whitespace().collect();
    let (index, partial) = match (ends_word, words.last()) {
        (true, Some(last)) => (words.len() - 1, *last),
        _ => (words.len(), ""),
    };
    let options: Vec<String> = match index {
        0 => c.verbs.iter().map(|(v, _)| v.to_string()).collect(),
        _ => {
            let verb = words.first().copied().unwrap_or("");
            let synopsis = c
                .verbs
                .iter()
                .find(|(v, _)| *v == verb)
                .map_or("", |(_, s)| *s);
            let arg = synopsis.split_whitespace().nth(index - 1).unwrap_or("");
            match (verb, index, arg) {
                ("create", 1, _) => c.library.clone(),
                ("theme", 1, _) => c.themes.clone(),
                ("attach", 2, _) => vec!["vbd".into(), "vif".into(), "pci".into()],
                (_, _, a) if a.starts_with('[') && a.contains('|') => a
                    .trim_matches(|ch| ch == '[' || ch == ']')
                    .split('|')
                    .map(str::to_string)
                    .collect(),
                (_, _, "DOM") => c.domains.clone(),
                _ => Vec::new(),
            }
        }
    };
    let mut fits: Vec<&String> = options.iter().filter(|o| o.starts_with(partial)).collect();
    fits.sort();
    fits.dedup();
    let done = match fits.as_slice() {
        [] => return None,
        [one] => format!("{one} "),
        many => {
            let first = many[0].as_str();
            let shared = many
                .iter()
                .map(|o| {
                    first
                        .chars()
                        .zip(o.chars())
                        .take_while(|(a, b)| a == b)
                        .map(|(a, _)| a.len_utf8())
                        .sum::<usize>()
                })
                .min()
                .unwrap_or(0);
            if shared <= partial.len() {
                return None;
            }
            first[..shared].to_string()
        }
    };
    let keep = &text[..text.len() - partial.len()];
    Some(format!("{keep}{done}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c() -> Candidates {
        Candidates {
            verbs: vec![
                ("pause", "DOM"),
                ("shutdown", "DOM [poweroff|reboot|suspend]"),
                ("attach", "DOM vbd UNAME DEV [r|w] | vif [mac=…] | pci BDF"),
                ("create", "NAME|FILE"),
                ("theme", "NAME"),
                ("start", "DOM"),
            ],
            domains: vec!["tiny".into(), "tiny2".into(), "web1".into()],
            library: vec!["hvm".into(), "web1".into(), "win1".into()],
            themes: vec!["dark".into(), "light".into()],
        }
    }

    #[test]
    fn completes_the_last_word_and_keeps_the_rest() {
        let c = c();
        assert_eq!(complete("pa", &c).as_deref(), Some("pause "));
        assert_eq!(complete("pause ti", &c).as_deref(), Some("pause tiny"));
        assert_eq!(complete("pause we", &c).as_deref(), Some("pause web1 "));
        assert_eq!(complete("pause tiny2", &c).as_deref(), Some("pause tiny2 "));
        assert_eq!(
            complete("shutdown web1 re", &c).as_deref(),
            Some("shutdown web1 reboot ")
        );
        assert_eq!(
            complete("attach web1 v", &c),
            None,
            "vbd and vif share only 'v'"
        );
        assert_eq!(
            complete("attach web1 vb", &c).as_deref(),
            Some("attach web1 vbd ")
        );
        assert_eq!(complete("create w", &c), None);
        assert_eq!(complete("create wi", &c).as_deref(), Some("create win1 "));
        assert_eq!(complete("theme l", &c).as_deref(), Some("theme light "));
        assert_eq!(complete("s", &c), None, "shutdown and start share only 's'");
        assert_eq!(complete("pause nosuch", &c), None);
        assert_eq!(
            complete("pause ", &c),
            None,
            "tiny, tiny2 and web1 share nothing"
        );
    }
}
