//! What an adversarial trial of the binary found, each pinned by a test:
//! a state dir under a symlinked parent, escape bytes in what `info` and
//! `check` print, a reader that closes the pipe, `events --limit`, one
//! disk under several names, the scroll region `console --log` left
//! behind, and `shutdown --wait` when the policy fails.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use domus::engine::Engine;
use domus::tui::testing::shared_sim;

fn domus(state: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_domus"));
    c.args(["--backend", "sim", "--state-dir"]).arg(state);
    c.env_remove("DOMUS_SIM_FAULTS")
        .env_remove("DOMUS_SIM_SLOW")
        .env_remove("DOMUS_KILL_AT");
    c
}

fn out(state: &Path, args: &[&str]) -> Output {
    domus(state)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("domus {args:?}: {e}"))
}

fn ok(state: &Path, args: &[&str]) -> String {
    let o = out(state, args);
    assert!(
        o.status.success(),
        "domus {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let p = dir.join(format!("{name}.sxp"));
    std::fs::write(
        &p,
        format!("(vm (name {name}) (memory 64) (image (linux (kernel /k))) {extra})"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p
}

/// A home reached through a symlink (`/home` → `/var/home`) is ordinary:
/// only a state dir that is itself a link is refused.
#[test]
fn a_state_dir_under_a_symlinked_parent_works() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap_or_else(|e| panic!("{e}"));
    let state = link.join("state");
    let cfg = config(dir.path(), "web", "");
    ok(&state, &["create", &cfg.display().to_string()]);
    assert!(ok(&state, &["list"]).contains("web"));
    assert!(real.join("state/domus.db").is_file());
}

/// Bytes a config or a command line put in a path never reach the
/// terminal raw through `info` or `check`.
#[test]
fn info_and_check_print_no_escape_bytes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    // Kernel arguments may hold any byte but NUL and line breaks.
    let p = dir.path().join("esc.sxp");
    std::fs::write(
        &p,
        "(vm (name esc) (memory 64) (image (linux (kernel /k) (args 'quiet \x1b]0;PWNED\x07'))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = p;
    ok(&state, &["create", &cfg.display().to_string()]);
    // A path with control bytes is refused, and the refusal shows none.
    let hostile = "file:/tmp/\x1b]0;PWNED\x07\x1b]52;c;aGk=\x07\x1b[6n.img";
    let attach = out(&state, &["attach", "esc", "vbd", hostile, "xvdb", "w"]);
    assert!(!attach.status.success());
    assert!(
        !attach.stderr.contains(&0x1b) && !attach.stderr.contains(&0x07),
        "{:?}",
        String::from_utf8_lossy(&attach.stderr)
    );
    let info = out(&state, &["info", "esc"]);
    assert!(info.status.success());
    assert!(
        !info.stdout.contains(&0x1b) && !info.stdout.contains(&0x07),
        "{:?}",
        String::from_utf8_lossy(&info.stdout)
    );
    // Shown escaped (`\033]0;PWNED`), never raw.
    assert!(String::from_utf8_lossy(&info.stdout).contains("]0;PWNED"));
    let named = dir.path().join("h-\x1b]0;FN\x07.sxp");
    std::fs::copy(&cfg, &named).unwrap_or_else(|e| panic!("{e}"));
    let check = out(&state, &["check", &named.display().to_string()]);
    assert!(check.status.success());
    assert!(!check.stdout.contains(&0x1b), "{:?}", check.stdout);
}

/// `domus list | head -c 10`: the reader goes away; domus ends quietly.
#[test]
fn a_reader_that_closes_the_pipe_is_no_panic() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    {
        // Enough domains to fill a pipe, built in-process.
        let clock = domus::clock::ManualClock::new(1);
        let sim = shared_sim(&state, clock.clone());
        let engine =
            Engine::persistent(Arc::new(sim), clock, &state).unwrap_or_else(|e| panic!("{e}"));
        for i in 0..1200 {
            let c = common::config(&format!(
                "(vm (name pipe{i}) (memory 1) (image (linux (kernel /k))))"
            ));
            engine.create(&c, None).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let mut child = domus(&state)
        .arg("list")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut first = [0u8; 10];
    if let Some(mut o) = child.stdout.take() {
        o.read_exact(&mut first).unwrap_or_else(|e| panic!("{e}"));
    }
    let done = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&done.stderr);
    assert!(!said.contains("panicked"), "{said}");
    assert!(done.status.success(), "{:?}: {said}", done.status);
}

/// `--limit N` counts the lines shown, not the hidden operation entries.
#[test]
fn events_limit_counts_what_is_shown() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "lim", "");
    ok(&state, &["create", &cfg.display().to_string()]);
    ok(&state, &["pause", "lim"]);
    ok(&state, &["unpause", "lim"]);
    for n in [1, 3] {
        let shown = ok(&state, &["events", "--limit", &n.to_string()]);
        assert_eq!(shown.lines().count(), n, "{shown}");
    }
    assert!(ok(&state, &["events", "--limit", "1"]).contains("unpaused"));
}

/// One disk under several names (a symlink, `//`, `./`, `phy:`) is one
/// disk: a second writer is refused whatever it calls it.
#[test]
fn one_disk_under_several_names_is_one_disk() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let img = dir.path().join("disk.img");
    std::fs::write(&img, vec![0u8; 4096]).unwrap_or_else(|e| panic!("{e}"));
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&img, &link).unwrap_or_else(|e| panic!("{e}"));
    for name in ["a1", "a2"] {
        let c = config(dir.path(), name, "");
        ok(&state, &["create", &c.display().to_string()]);
    }
    ok(
        &state,
        &[
            "attach",
            "a1",
            "vbd",
            &format!("file:{}", img.display()),
            "xvdb",
            "w",
        ],
    );
    let d = dir.path().display().to_string();
    for other in [
        format!("file:{}", link.display()),
        format!("file:{d}//disk.img"),
        format!("file:{d}/./disk.img"),
        format!("phy:{}", img.display()),
    ] {
        let o = out(&state, &["attach", "a2", "vbd", &other, "xvdc", "w"]);
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{other} was attached a second time");
        assert!(said.contains("already attached to a1"), "{other}: {said}");
    }
}

/// A rename-restart that cannot rename (the name is taken) is a failed
/// `shutdown --wait`, not a success.
#[test]
fn shutdown_wait_fails_when_the_policy_fails() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let rr = config(dir.path(), "rr", "(on_poweroff rename-restart)");
    ok(&state, &["create", &rr.display().to_string()]);
    let taken = config(dir.path(), "rr-1", "");
    ok(&state, &["create", &taken.display().to_string()]);
    let o = out(&state, &["shutdown", "--wait", "--timeout", "30", "rr"]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(said.contains("rr"), "{said}");
}

/// `console --log` on a terminal undoes what the guest's sequences set
/// (a scroll region) and leaves the prompt on a line of its own.
#[test]
fn console_log_on_a_terminal_resets_what_the_guest_set() {
    use common::pty::Pty;
    use portable_pty::CommandBuilder;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "sr", "");
    ok(&state, &["create", &cfg.display().to_string()]);
    {
        let clock = domus::clock::ManualClock::new(1);
        let sim = shared_sim(&state, clock.clone());
        let engine =
            Engine::persistent(Arc::new(sim), clock, &state).unwrap_or_else(|e| panic!("{e}"));
        let id = engine.resolve("sr").map(|i| i.domid).unwrap_or_default();
        common::type_line(&engine, id, r"printf \033[5;10rlast");
    }
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--state-dir"]);
    cmd.arg(&state);
    cmd.args(["console", "--log", "sr"]);
    let mut pty = Pty::spawn(cmd, 24, 80, |_| {});
    pty.wait_exit("console --log");
    let raw = || pty.shared.lock().map(|g| g.1.clone()).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&raw()).ends_with("\x1b[0m")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let text = String::from_utf8_lossy(&raw()).into_owned();
    let at = text
        .rfind("\x1b[5;10r")
        .unwrap_or_else(|| panic!("the scroll region passes the filter: {text:?}"));
    assert!(
        text[at..].contains("\x1b[r"),
        "and is reset at the end: {text:?}"
    );
    let reset = text.rfind("\x1b7\x1b[?1049l").unwrap_or(0);
    assert!(
        text[..reset].ends_with('\n'),
        "the prompt gets a line of its own: {text:?}"
    );
}
