//! The TUI's flows, one named snapshot per step: 120×36, the simulator
//! with a fixed clock and seed, effects run inline (see `tui::testing`).

use std::path::Path;

use crossterm::event::KeyCode;
use domus::tui::testing::{Harness, HarnessOptions};

struct Dirs {
    _root: tempfile::TempDir,
    config: std::path::PathBuf,
    recovery: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = root.path().join("domains");
    let recovery = root.path().join("recovery");
    Dirs {
        _root: root,
        config,
        recovery,
    }
}

fn harness_with(d: &Dirs, theme: &str, read_only: bool) -> Harness {
    Harness::new(HarnessOptions {
        size: (120, 36),
        theme,
        read_only,
        config_dir: &d.config,
        recovery_dir: &d.recovery,
        state_dir: None,
    })
}

/// A harness of another size, dark, on the simulator in memory.
fn sized(d: &Dirs, size: (u16, u16)) -> Harness {
    Harness::new(HarnessOptions {
        size,
        theme: "dark",
        read_only: false,
        config_dir: &d.config,
        recovery_dir: &d.recovery,
        state_dir: None,
    })
}

fn build(h: &mut Harness, file: &Path) {
    let (config, _) = domus::config::load_file(file).unwrap_or_else(|e| panic!("{e}"));
    h.engine()
        .create(&config, Some(file))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Domain-0 plus web1 and plan9term, two refreshes so CPU% has a delta.
fn started(d: &Dirs, theme: &str, read_only: bool) -> Harness {
    let mut h = harness_with(d, theme, read_only);
    build(&mut h, &d.config.join("web1.sxp"));
    build(&mut h, &d.config.join("plan9.sxp"));
    h.tick(1.0);
    h.tick(2.0);
    h
}

/// Whether the table shows `name` paused.
fn paused(screen: &str, name: &str) -> bool {
    screen
        .lines()
        .any(|l| l.contains(name) && l.contains("--p---"))
}

fn select(h: &mut Harness, name: &str) {
    h.key(KeyCode::Home);
    for _ in 0..h.app.table.order.len() {
        if h.app.table.selected_row().is_some_and(|r| r.name == name) {
            return;
        }
        h.key(KeyCode::Down);
    }
    panic!("{name} is not in the table");
}

#[test]
fn startup_shows_domain0_and_two_examples() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let screen = h.screen();
    assert!(screen.contains("3 domains: "), "{screen}");
    insta::assert_snapshot!("startup", screen);
}

#[test]
fn sort_and_filter() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('>'));
    insta::assert_snapshot!("sort_by_name", h.screen());
    h.key(KeyCode::Char('r'));
    insta::assert_snapshot!("sort_by_name_reversed", h.screen());
    h.key(KeyCode::Char('/'));
    h.type_text("web");
    insta::assert_snapshot!("filter_typing", h.screen());
    h.key(KeyCode::Enter);
    assert_eq!(h.app.table.order.len(), 1);
    insta::assert_snapshot!("filter_applied", h.screen());
    h.key(KeyCode::Char('/'));
    h.ctrl('u');
    h.type_text("^(plan|dom)");
    h.key(KeyCode::Enter);
    assert_eq!(h.app.table.order.len(), 2);
    insta::assert_snapshot!("filter_regex", h.screen());
    // Clicking the MEM header sorts by memory.
    let (top, _) = domus::tui::ui::layout::table_rows((120, 36));
    let mut x = 1;
    for (col, w) in domus::tui::table::visible_columns(120) {
        if col == domus::tui::table::Column::Mem {
            break;
        }
        x += w + 1;
    }
    h.click(x + 2, top - 1);
    assert_eq!(h.app.table.column(), domus::tui::table::Column::Mem);
}

#[test]
fn build_a_domain_from_the_config_library() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    insta::assert_snapshot!("library", h.screen());
    h.key(KeyCode::Home); // hvm.sxp sorts first
    h.key(KeyCode::Enter);
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("built win1 as domain 3"), "{screen}");
    assert_eq!(
        h.app.table.selected_row().map(|r| r.name.as_str()),
        Some("win1")
    );
    insta::assert_snapshot!("library_built", screen);
}

#[test]
fn pause_and_unpause() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(paused(&screen, "web1"), "{screen}");
    insta::assert_snapshot!("paused", screen);
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(!screen.contains("--p---"), "{screen}");
    insta::assert_snapshot!("unpaused", screen);
}

#[test]
fn console_boot_log_command_and_detach() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    let screen = h.screen();
    assert!(screen.contains("Welcome to web1"), "{screen}");
    insta::assert_snapshot!("console_boot_log", screen);
    h.type_text("cat /proc/partitions\r");
    let screen = h.screen();
    assert!(screen.contains(" 202        0    8388608 xvda"), "{screen}");
    insta::assert_snapshot!("console_partitions", screen);
    h.ctrl(']');
    let screen = h.screen();
    assert!(screen.contains("Domains (3)"), "{screen}");
    insta::assert_snapshot!("console_detached", screen);
}

#[test]
fn attach_a_vbd_through_the_form_and_see_it_in_the_guest() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('a'));
    insta::assert_snapshot!("attach_form", h.screen());
    // A bad uname is caught by the form, before the engine is called.
    h.ctrl('u');
    h.type_text("disk.img");
    h.key(KeyCode::Enter);
    let screen = h.screen();
    assert!(screen.contains("✘ invalid uname 'disk.img'"), "{screen}");
    insta::assert_snapshot!("attach_form_error", screen);
    h.ctrl('u');
    h.type_text("file:/srv/data.img");
    h.key(KeyCode::Enter);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("web1: attached vbd xvdb file:/srv/data.img (w)"),
        "{screen}"
    );
    insta::assert_snapshot!("attach_done", screen);
    h.key(KeyCode::Char('c'));
    h.type_text("cat /proc/partitions\r");
    let screen = h.screen();
    assert!(screen.contains(" 202       16    8388608 xvdb"), "{screen}");
    insta::assert_snapshot!("attach_seen_in_guest", screen);
}

#[test]
fn destroy_asks_first() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "plan9term");
    h.key(KeyCode::Char('d'));
    insta::assert_snapshot!("destroy_confirm", h.screen());
    h.key(KeyCode::Char('y'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        h.app.table.rows.iter().all(|r| r.name != "plan9term"),
        "{screen}"
    );
    assert!(screen.contains("destroyed plan9term"), "{screen}");
    insta::assert_snapshot!("destroyed", screen);
    // Domain-0 is never offered for destruction.
    select(&mut h, "Domain-0");
    h.key(KeyCode::Char('d'));
    assert!(h.screen().contains("Domain-0 cannot be destroyed"));
}

#[test]
fn guest_poweroff_applies_on_poweroff() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "plan9term");
    h.key(KeyCode::Char('c'));
    h.type_text("poweroff\r");
    insta::assert_snapshot!("poweroff_console", h.screen());
    h.ctrl(']');
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen
            .contains("plan9term (domain 2) shut down (poweroff); on_poweroff destroy: destroyed"),
        "{screen}"
    );
    insta::assert_snapshot!("poweroff_policy_applied", screen);
}

#[test]
fn guest_crash_with_on_crash_restart() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    h.type_text("crash\r");
    h.ctrl(']');
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("on_crash restart: restarted as domain 3"),
        "{screen}"
    );
    insta::assert_snapshot!("crash_restarted", screen);
    select(&mut h, "web1");
    h.key(KeyCode::Enter);
    let screen = h.screen();
    assert!(screen.contains("restarted as domain 3"), "{screen}");
    insta::assert_snapshot!("crash_timeline", screen);
}

#[test]
fn editor_syntax_error_then_fixed_and_saved() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('n'));
    h.type_text("db1\r");
    insta::assert_snapshot!("editor_new", h.screen());
    for _ in 0..3 {
        h.key(KeyCode::Down);
    }
    h.key(KeyCode::End);
    h.key(KeyCode::Left);
    h.type_text("x");
    let screen = h.screen();
    assert!(
        screen.contains("db1.sxp:4:13: memory must be a positive number of MiB, got \"128x\""),
        "{screen}"
    );
    insta::assert_snapshot!("editor_error", screen);
    // Saving a broken config keeps the text and says it will not build.
    h.ctrl('s');
    let screen = h.screen();
    assert!(
        screen.contains("saved db1.sxp; it will not build: 4:13: memory must be"),
        "{screen}"
    );
    h.key(KeyCode::Backspace);
    let screen = h.screen();
    assert!(screen.contains("✔ valid"), "{screen}");
    insta::assert_snapshot!("editor_fixed", screen);
    h.ctrl('s');
    let screen = h.screen();
    assert!(screen.contains("saved db1.sxp"), "{screen}");
    insta::assert_snapshot!("editor_saved", screen);
    let saved = std::fs::read_to_string(d.config.join("db1.sxp")).unwrap_or_default();
    assert!(saved.contains("(memory 128)"), "{saved}");
    h.key(KeyCode::Esc);
    assert!(
        h.screen().contains("db1.sxp"),
        "the library lists the new file"
    );
}

#[test]
fn editor_keeps_a_recovery_copy_and_offers_it_back() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::End); // web1.sxp sorts last
    h.key(KeyCode::Char('e'));
    h.type_text("# unsaved note");
    // The process dies here: a new session opens the same file.
    drop(h);
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::End);
    h.key(KeyCode::Char('e'));
    let screen = h.screen();
    assert!(screen.contains("web1.sxp has unsaved edits"), "{screen}");
    insta::assert_snapshot!("editor_recover_offer", screen);
    // A reflexive Esc opens the file as saved and keeps the copy.
    h.key(KeyCode::Esc);
    assert!(!h.screen().contains("# unsaved note"));
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('e'));
    assert!(
        h.screen().contains("web1.sxp has unsaved edits"),
        "offered again after Esc"
    );
    h.key(KeyCode::Char('y'));
    let screen = h.screen();
    assert!(screen.contains("# unsaved note"), "{screen}");
    assert!(screen.contains("[modified]"), "{screen}");
}

#[test]
fn help_overlay() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('?'));
    let screen = h.screen();
    assert!(screen.contains("Destroy (asks first)"), "{screen}");
    insta::assert_snapshot!("help", screen);

    // PgDn pages on; End reaches the palette's commands, and Up right
    // after End moves at once (the scroll is kept within the text).
    h.key(KeyCode::PageDown);
    let paged = h.screen();
    assert_ne!(paged, screen, "PgDn scrolls the help");
    h.key(KeyCode::End);
    let end = h.screen();
    assert!(end.contains("restore FILE"), "{end}");
    h.key(KeyCode::Up);
    assert_ne!(h.screen(), end, "Up after End scrolls back at once");
    h.key(KeyCode::Home);
    assert_eq!(h.screen(), screen);
}

#[test]
fn read_only_mode_removes_destructive_actions() {
    let d = dirs();
    let mut h = started(&d, "dark", true);
    let screen = h.screen();
    assert!(screen.contains("READ-ONLY"), "{screen}");
    assert!(!screen.contains(" d destroy"), "{screen}");
    insta::assert_snapshot!("read_only", screen);
    select(&mut h, "web1");
    h.key(KeyCode::Char('d'));
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    assert!(
        !h.screen().contains("Destroy web1"),
        "no confirm dialog in read-only mode"
    );
    assert!(
        !h.screen().contains("--p---"),
        "pause is not available in read-only mode"
    );
    h.key(KeyCode::Char(':'));
    h.type_text("destroy web1\r");
    assert!(
        h.screen()
            .contains("destroy is not available in read-only mode")
    );
    h.key(KeyCode::Char('?'));
    let screen = h.screen();
    assert!(!screen.contains("Destroy (asks first)"), "{screen}");
    insta::assert_snapshot!("read_only_help", screen);
}

#[test]
fn command_palette_runs_cli_verbs() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("attach web1 vbd file:/srv/x.img xvdb w");
    insta::assert_snapshot!("palette", h.screen());
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(':'));
    h.type_text("destroy 2\r");
    assert!(
        h.screen().contains("Destroy plan9term (domain 2)?"),
        "the palette's destroy asks first too"
    );
    h.key(KeyCode::Char('y'));
    h.tick(1.0);
    assert!(h.app.table.rows.iter().all(|r| r.name != "plan9term"));
    let web1 = h
        .app
        .table
        .rows
        .iter()
        .find(|r| r.name == "web1")
        .map(|r| r.devices);
    assert_eq!(web1, Some((2, 1, 1)));
}

#[test]
fn each_theme() {
    for theme in ["dark", "light", "high-contrast"] {
        let d = dirs();
        let mut h = started(&d, theme, false);
        let buffer = h.buffer();
        insta::assert_debug_snapshot!(format!("theme_{theme}"), buffer);
    }
}

#[test]
fn state_colours() {
    let d = dirs();
    let mut h = harness_with(&d, "dark", false);
    let mk = |name: &str, policy: &str| {
        domus::config::parse_str(
            &format!("(vm (name {name}) (memory 64) (image (linux (kernel /k))) {policy})"),
            "t",
        )
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let e = h.engine().clone();
    let paused = e
        .create(&mk("paused", ""), None)
        .unwrap_or_else(|e| panic!("{e}"));
    e.pause(paused).unwrap_or_else(|e| panic!("{e}"));
    let off = e
        .create(&mk("off", "(on_poweroff preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    e.shutdown(off, domus::backend::ShutdownReason::Poweroff)
        .unwrap_or_else(|e| panic!("{e}"));
    let crashed = e
        .create(&mk("crashed", "(on_crash preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut con = e.console(crashed).unwrap_or_else(|e| panic!("{e}"));
    con.write(b"crash\r").unwrap_or_else(|e| panic!("{e}"));
    for n in ["a", "b", "c", "d"] {
        e.create(&mk(n, ""), None).unwrap_or_else(|e| panic!("{e}"));
    }
    h.tick(1.0);
    let states: Vec<String> = h
        .app
        .table
        .rows
        .iter()
        .map(|r| r.view.info.state_string())
        .collect();
    for s in ["r-----", "-b----", "--p---", "---s--", "---sc-"] {
        assert!(states.iter().any(|x| x == s), "{s} missing from {states:?}");
    }
    // Only the table area: the styled cells of the STATE column.
    let buffer = h.buffer();
    let (top, _) = domus::tui::ui::layout::table_rows((120, 36));
    // Where the columns are at this width (NAME takes what is left).
    let mut x = 1;
    let (mut name_x, mut name_w, mut state_x) = (0, 0, 0);
    for (col, w) in domus::tui::table::visible_columns(120) {
        match col {
            domus::tui::table::Column::Name => (name_x, name_w) = (x, w),
            domus::tui::table::Column::State => state_x = x,
            _ => {}
        }
        x += w + 1;
    }
    let mut cells = String::new();
    for y in top..top + states.len() as u16 {
        let name: String = (name_x..name_x + name_w)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        let cell = &buffer[(state_x, y)];
        let text: String = (state_x..state_x + 6)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        cells.push_str(&format!("{:<10} {text} fg={:?}\n", name.trim(), cell.fg));
    }
    assert!(
        cells.contains("--p---") && cells.contains("---sc-"),
        "{cells}"
    );
    insta::assert_snapshot!("state_colours", cells);

    // On the selected row the selection's colours win in every theme
    // (high-contrast's cyan state on its yellow bar could not be read).
    for theme in ["dark", "light", "high-contrast"] {
        h.key(KeyCode::Char(':'));
        h.type_text(&format!("theme {theme}\r"));
        select(&mut h, "paused");
        let sel = h.app.theme.selection();
        let buffer = h.buffer();
        let row = top + h.app.table.selected as u16 - h.app.table.offset as u16;
        let cell = &buffer[(state_x, row)];
        assert_eq!(
            (cell.fg, cell.bg),
            (sel.fg.unwrap_or_default(), sel.bg.unwrap_or_default()),
            "{theme}"
        );
    }
}

#[test]
fn narrow_terminals_drop_columns_instead_of_cutting_numbers() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    let screen = h.screen();
    let dom0 = screen
        .lines()
        .find(|l| l.contains("Domain-0"))
        .unwrap_or_default();
    assert!(dom0.contains(" 2048"), "memory shown whole: {screen}");
    insta::assert_snapshot!("narrow_80x24", screen);
}

#[test]
fn a_console_survives_shrinking_and_growing_the_terminal() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    h.type_text("echo marker-one\r");
    h.dispatch(domus::tui::action::Action::Resize(60, 15));
    let small = h
        .app
        .consoles
        .values()
        .next()
        .map(|c| c.parser.screen().contents())
        .unwrap_or_default();
    assert!(
        small.contains("marker-one") && small.trim_end().ends_with("/ #"),
        "{small}"
    );
    h.dispatch(domus::tui::action::Action::Resize(120, 36));
    let big = h
        .app
        .consoles
        .values()
        .next()
        .map(|c| c.parser.screen().contents())
        .unwrap_or_default();
    assert!(
        big.contains("Welcome to web1") && big.contains("marker-one"),
        "{big}"
    );
}

#[test]
fn the_editor_scrolls_sideways_to_the_cursor() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::End);
    h.key(KeyCode::Char('e'));
    h.type_text(&format!("# {}END", "x".repeat(200)));
    let screen = h.screen();
    assert!(
        screen.contains("xxxxEND"),
        "the end of a long line is visible: {screen}"
    );
}

/// A backend without suspend (QEMU, Xen): the menu offers no `s`, and the
/// key says so instead of running another reason.
#[test]
fn shutdown_menu_letter_for_a_missing_reason_does_nothing() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.app.hosts.0[0]
        .caps
        .0
        .remove(&domus::backend::Capability::Suspend);
    h.key(KeyCode::Char('s'));
    let screen = h.screen();
    assert!(
        screen.contains("poweroff") && !screen.contains("s suspend"),
        "{screen}"
    );
    h.key(KeyCode::Char('s'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("suspend is not offered"), "{screen}");
    let web1 = h.engine().resolve("web1").unwrap_or_else(|e| panic!("{e}"));
    assert!(web1.is_active(), "web1 still runs: {}", web1.state_string());
}

/// Leaving the console view lets go of the stream; opening it again
/// replays the log into a fresh view, once.
#[test]
fn console_reopen_replays_once() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    h.ctrl(']');
    h.key(KeyCode::Char('c'));
    let screen = h.screen();
    assert_eq!(
        screen.matches("Welcome to web1").count(),
        1,
        "the boot log once: {screen}"
    );
}

#[test]
fn a_long_message_is_cut_on_the_status_line_and_whole_in_events() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let name = format!("{}end-of-name", "a-very-long-domain-name-".repeat(6));
    h.key(KeyCode::Char(':'));
    h.type_text("pause first\r");
    h.key(KeyCode::Char(':'));
    h.type_text(&format!("pause {name}\r"));
    let screen = h.screen();
    assert!(screen.contains("no domain a-very-long"), "{screen}");
    assert!(screen.contains("… (3: Events)"), "{screen}");
    assert!(!screen.contains("end-of-name"), "{screen}");
    insta::assert_snapshot!("status_cut", screen);

    // The Events tab has it whole, wrapped, on the selected (newest) line.
    h.key(KeyCode::Char('3'));
    let screen = h.screen();
    assert!(screen.contains("end-of-name"), "{screen}");
    let newest = h.app.events.len() - 1;
    assert_eq!(h.app.events_selected, newest);
    insta::assert_snapshot!("events_wrapped", screen);

    // Up leaves the newest line; the selection then stays put while new
    // lines arrive. Back on the newest line it follows them again.
    h.key(KeyCode::Up);
    assert_eq!(h.app.events_selected, newest - 1);
    h.key(KeyCode::Char(':'));
    h.type_text("pause nosuch\r");
    assert_eq!(h.app.events_selected, newest - 1, "not following");
    h.key(KeyCode::End);
    let last = h.app.events.len() - 1;
    assert_eq!(h.app.events_selected, last);
    h.key(KeyCode::Char(':'));
    h.type_text("pause nosuch2\r");
    assert_eq!(h.app.events_selected, last + 1, "following again");
    assert!(h.screen().contains("no domain nosuch2"));
}

#[test]
fn shift_tab_f1_and_ctrl_c_do_what_other_tools_do() {
    use domus::tui::app::Tab;
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.shift(KeyCode::BackTab);
    assert_eq!(h.app.tab, Tab::Gone, "Shift-Tab goes back a tab");
    h.key(KeyCode::BackTab);
    assert_eq!(h.app.tab, Tab::Events);
    h.key(KeyCode::Tab);
    assert_eq!(h.app.tab, Tab::Gone);
    h.key(KeyCode::F(1));
    assert!(h.screen().contains("Previous tab"), "F1 opens the help");
    assert!(h.screen().contains("Shift-Tab"));
    h.key(KeyCode::Esc);
    assert!(!h.app.quit);
    h.ctrl('c');
    assert!(h.app.quit, "Ctrl-C quits, as q does");
}

#[test]
fn a_low_memory_target_asks_first() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    let mem_of = |h: &mut Harness| {
        h.tick(1.0);
        h.app
            .table
            .selected_row()
            .map(|r| r.view.info.memory_kib / 1024)
    };
    let before = mem_of(&mut h);

    // An ordinary target applies at once.
    h.key(KeyCode::Char('m'));
    h.ctrl('u');
    h.type_text("96\r");
    assert_eq!(mem_of(&mut h), Some(96), "was {before:?}");

    // A tiny one asks; n keeps the memory as it was.
    h.key(KeyCode::Char('m'));
    h.ctrl('u');
    h.type_text("16\r");
    let screen = h.screen();
    assert!(
        screen.contains("Set web1's memory target to 16 MiB (below 64)?"),
        "{screen}"
    );
    insta::assert_snapshot!("mem_target_confirm", screen);
    h.key(KeyCode::Char('n'));
    assert_eq!(mem_of(&mut h), Some(96));

    // y sets it; the palette's mem-set asks the same way.
    h.key(KeyCode::Char('m'));
    h.ctrl('u');
    h.type_text("16\r");
    h.key(KeyCode::Char('y'));
    assert_eq!(mem_of(&mut h), Some(16));
    h.key(KeyCode::Char(':'));
    h.type_text("mem-set Domain-0 100\r");
    assert!(
        h.screen()
            .contains("Set Domain-0's memory target to 100 MiB (below 512)?")
    );
    h.key(KeyCode::Esc);
}

/// Work waiting its turn on a domain shows after its name, and `C`
/// cancels it (what has started is not touched); with nothing waiting,
/// `C` says so.
#[test]
fn queued_operations_show_and_can_be_cancelled() {
    use crossterm::event::{KeyEvent, KeyModifiers};
    use domus::tui::action::{Action, Done, Effect};
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    let web1 = h
        .app
        .table
        .selected_domid()
        .unwrap_or_else(|| panic!("web1 is not selected"));
    let press_c = KeyEvent::new(KeyCode::Char('C'), KeyModifiers::NONE);
    assert!(h.app.update(Action::Key(press_c)).is_empty());
    assert!(h.screen().contains("nothing waits on web1"));
    h.dispatch(Action::Queued {
        domid: web1,
        ops: vec!["pause", "save"],
    });
    insta::assert_snapshot!("queued_operations", h.screen());
    assert_eq!(
        h.app.update(Action::Key(press_c)),
        vec![Effect::CancelQueued(vec![web1])]
    );
    h.dispatch(Action::Queued {
        domid: web1,
        ops: Vec::new(),
    });
    h.dispatch(Action::Done(Done::Cancelled {
        domid: web1,
        ops: vec!["pause", "save"],
    }));
    let screen = h.screen();
    assert!(!screen.contains("queued"), "{screen}");
    assert!(
        screen.contains("cancelled on web1 before they started: pause, save"),
        "{screen}"
    );
}

/// An xl.cfg in the library is marked as such and `i` imports it as
/// NAME.sxp, which the library then lists as a config to build.
#[test]
fn an_xl_cfg_in_the_library_is_marked_and_imported_with_i() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    std::fs::write(
        d.config.join("mail.cfg"),
        "name = \"mail\"\nmemory = 256\nkernel = \"/boot/vmlinuz\"\n\
         disk = [ 'phy:/dev/vg/mail,xvda,w', ',hdc:cdrom,r' ]\nspice = 1\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    h.key(KeyCode::Char('2'));
    let screen = h.screen();
    assert!(screen.contains("xl.cfg · i imports"), "{screen}");
    h.key(KeyCode::Home);
    while h
        .app
        .library
        .selected_entry()
        .is_some_and(|e| e.file != "mail.cfg")
    {
        h.key(KeyCode::Down);
    }
    h.key(KeyCode::Char('i'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("imported mail.cfg as mail.sxp (1 warning(s)"),
        "{screen}"
    );
    insta::assert_snapshot!("library_xl_imported", screen);
    let sxp = std::fs::read_to_string(d.config.join("mail.sxp")).unwrap_or_else(|e| panic!("{e}"));
    assert!(sxp.contains("(dev hdc:cdrom)"), "{sxp}");
    // A second import does not overwrite the first.
    h.key(KeyCode::Char('i'));
    h.tick(1.0);
    assert!(
        h.screen().contains("already in the library"),
        "{}",
        h.screen()
    );
}

/// Details say what boots an xend HVM domain: its boot order, not the
/// firmware loader as a kernel.
#[test]
fn details_show_an_hvm_domains_boot_order() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    // From the library, so the snapshot names no machine-specific path.
    let listing = d.config.join("winxp.sxp");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid/xend-hvm-listing.sxp"),
        &listing,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    build(&mut h, &listing);
    h.tick(3.0);
    select(&mut h, "winxp");
    h.key(KeyCode::Enter);
    let screen = h.screen();
    assert!(
        screen.contains("image hvm · boots from CD, then disk"),
        "{screen}"
    );
    assert!(!screen.contains("hvmloader"), "{screen}");
    insta::assert_snapshot!("details_hvm_boot_order", screen);
}

/// An attach the engine refuses keeps the form open with the reason and
/// the input, to correct and try again.
#[test]
fn a_failed_attach_keeps_the_form_and_its_input() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('a'));
    h.ctrl('u');
    h.type_text("file:/srv/data.img");
    h.key(KeyCode::Down);
    h.ctrl('u');
    h.type_text("xvda"); // web1 already has an xvda
    h.key(KeyCode::Enter);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        matches!(h.app.mode, domus::tui::app::Mode::Form(_)),
        "the form stays open:\n{screen}"
    );
    assert!(screen.contains("✘ ") && screen.contains("xvda"), "{screen}");
    assert!(
        screen.contains("file:/srv/data.img"),
        "the input is kept:\n{screen}"
    );
    insta::assert_snapshot!("attach_refused_keeps_form", screen);
    // Corrected, it goes through and the form closes.
    h.ctrl('u');
    h.type_text("xvdc");
    h.key(KeyCode::Enter);
    h.tick(1.0);
    assert!(matches!(h.app.mode, domus::tui::app::Mode::Normal));
    assert!(h.screen().contains("attached vbd xvdc"), "{}", h.screen());
}

/// Messages give way to newer results and expire; an unknown theme is
/// named; one domain is "1 domain".
#[test]
fn messages_expire_and_say_what_was_wrong() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("theme nosuch\r");
    assert!(
        h.screen().contains("no theme nosuch; themes: "),
        "{}",
        h.screen()
    );
    // A later success replaces the error at once.
    h.key(KeyCode::Char(':'));
    h.type_text("pause web1\r");
    h.tick(1.0);
    let screen = h.screen();
    assert!(!screen.contains("no theme nosuch"), "{screen}");
    // And every message goes after a while (the Events tab keeps it).
    h.tick(70.0);
    let screen = h.screen();
    assert!(!screen.contains("paused web1"), "{screen}");
    h.key(KeyCode::Char(':'));
    h.type_text("destroy web1\r");
    h.key(KeyCode::Char('y'));
    h.key(KeyCode::Char(':'));
    h.type_text("destroy plan9term\r");
    h.key(KeyCode::Char('y'));
    h.tick(71.0);
    assert!(h.screen().contains(" 1 domain: "), "{}", h.screen());
}

/// What is offered fits the domain's state: a preserved shut-down domain
/// offers start, not pause or shutdown; `S` builds it again.
#[test]
fn a_shut_down_domain_offers_start_not_pause() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let cfg = d.config.join("keep.sxp");
    std::fs::write(
        &cfg,
        "(vm (name keep) (memory 64) (image (linux (kernel /k))) (on_poweroff preserve))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    build(&mut h, &cfg);
    h.tick(1.0);
    select(&mut h, "keep");
    h.key(KeyCode::Char('c'));
    h.type_text("poweroff\r");
    h.ctrl(']');
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("---s--"), "{screen}");
    let footer = screen.lines().last().unwrap_or_default().to_string();
    assert!(footer.contains("S start"), "{footer}");
    assert!(
        !footer.contains("p pause") && !footer.contains("s shutdown"),
        "{footer}"
    );
    let row = screen
        .lines()
        .find(|l| l.contains(" keep "))
        .unwrap_or_default()
        .to_string();
    assert!(
        row.contains("---s--") && !row.contains("0:00:0"),
        "no uptime once shut down: {row}"
    );
    insta::assert_snapshot!("shut_down_offers_start", screen);
    h.key(KeyCode::Char('p'));
    assert!(
        h.screen()
            .contains("not offered for pause: keep is shut down (S starts it again"),
        "{}",
        h.screen()
    );
    h.key(KeyCode::Char('S'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("started keep"), "{screen}");
    let row = h
        .app
        .table
        .rows
        .iter()
        .find(|r| r.name == "keep")
        .map(|r| r.view.info.flags.shutdown);
    assert_eq!(row, Some(false), "{screen}");
}

/// What was said before the first refresh gets the start-up time in
/// Events, not a dash; a console whose domain went keeps its name.
#[test]
fn early_events_have_a_time_and_a_gone_consoles_title_its_name() {
    use domus::tui::app::{App, Level};
    let d = dirs();
    let mut h = harness_with(&d, "dark", false);
    let (themes, _) = domus::tui::theme::Theme::load_all(None);
    h.app = App::new(
        themes[0].clone(),
        themes,
        false,
        d.config.clone(),
        (120, 36),
    );
    h.app.log(Level::Warn, "said before the clock was read");
    h.tick(0.0);
    assert!(
        h.app.events.iter().all(|e| e.at_ns != 0),
        "every event has a time"
    );
    h.key(KeyCode::Char('3'));
    let screen = h.screen();
    assert!(
        screen.contains("2026-11-22 00:00:00") && screen.contains("said before"),
        "{screen}"
    );

    h.key(KeyCode::Char('1'));
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    h.tick(1.0);
    let web1 = h
        .engine()
        .resolve("web1")
        .map(|i| i.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    h.engine().destroy(web1).unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    h.tick(1.0);
    let title = h.screen().lines().next().unwrap_or_default().to_string();
    assert!(title.contains(" web1 "), "{title}");
}

/// At 80×24 the header leaves out whole parts (never a word cut in half),
/// the footer ends by pointing at the help, and the help's long command
/// synopses stand on their own line above their text.
#[test]
fn at_80x24_nothing_is_cut_mid_word() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    select(&mut h, "web1");
    let screen = h.screen();
    let lines: Vec<&str> = screen.lines().collect();
    assert_eq!(
        lines[0].trim_end(),
        " domus  simhost · sim backend · 4 CPUs",
        "{screen}"
    );
    assert!(lines[1].trim_end().ends_with("GiB free"), "{screen}");
    assert!(
        lines.last().is_some_and(|l| l.contains("… ? all keys")),
        "{screen}"
    );
    h.key(KeyCode::Char('?'));
    h.key(KeyCode::End);
    let help = h.screen();
    let at = help
        .lines()
        .position(|l| l.contains("attach DOM vbd"))
        .unwrap_or_else(|| panic!("{help}"));
    let synopsis = help.lines().nth(at).unwrap_or_default();
    let text = help.lines().nth(at + 1).unwrap_or_default();
    assert!(!synopsis.contains("Attach"), "{help}");
    assert!(text.contains("Attach"), "{help}");
    insta::assert_snapshot!("help_80x24_end", help);
}

/// On a wide terminal NAME grows (a long name and its operation note fit)
/// and DEVICES does not take the rest.
#[test]
fn at_200x60_name_grows_and_devices_stays_its_size() {
    let d = dirs();
    let mut h = sized(&d, (200, 60));
    let long = d.config.join("long.sxp");
    std::fs::write(
        &long,
        "(vm (name a-rather-long-domain-name-of-an-operator-fleet-01) (memory 64) (image (linux (kernel /k))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    build(&mut h, &long);
    h.tick(1.0);
    let cols = domus::tui::table::visible_columns(200);
    let name = cols
        .iter()
        .find(|(c, _)| *c == domus::tui::table::Column::Name)
        .map(|(_, w)| *w);
    assert!(name.is_some_and(|w| w >= 64), "{cols:?}");
    let screen = h.screen();
    assert!(
        screen.contains("a-rather-long-domain-name-of-an-operator-fleet-01 "),
        "{screen}"
    );
    insta::assert_snapshot!("wide_200x60", screen);
}

/// Tab in the palette completes the word being typed from what fits its
/// place, and keeps what was typed before it.
#[test]
fn palette_tab_completes_and_keeps_the_arguments() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("pause pl");
    h.key(KeyCode::Tab);
    let screen = h.screen();
    assert!(screen.contains(" : pause plan9term ▏"), "{screen}");
    h.key(KeyCode::Enter);
    h.tick(1.0);
    assert!(h.screen().contains("paused plan9term"), "{}", h.screen());
    h.key(KeyCode::Char(':'));
    h.type_text("shutdown web1 reb");
    h.key(KeyCode::Tab);
    assert!(
        h.screen().contains(" : shutdown web1 reboot ▏"),
        "{}",
        h.screen()
    );
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char(':'));
    h.type_text("create hv");
    h.key(KeyCode::Tab);
    assert!(h.screen().contains(" : create hvm ▏"), "{}", h.screen());
}

/// The editor's undo is Ctrl-Z and redo Ctrl-Y; Ctrl-U deletes to the
/// start of the line as in every other input; the help says so.
#[test]
fn editor_undo_redo_and_ctrl_u() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('n'));
    h.type_text("ed1\r");
    let original = match &h.app.mode {
        domus::tui::app::Mode::Editor(ed) => ed.text(),
        _ => panic!("no editor"),
    };
    let text = |h: &domus::tui::testing::Harness| match &h.app.mode {
        domus::tui::app::Mode::Editor(ed) => ed.text(),
        _ => panic!("no editor"),
    };
    h.type_text("xyz");
    assert_ne!(text(&h), original);
    for _ in 0..3 {
        h.ctrl('z');
    }
    assert_eq!(text(&h), original, "Ctrl-Z undoes, one character at a time");
    for _ in 0..3 {
        h.ctrl('y');
    }
    assert!(text(&h).contains("xyz"), "Ctrl-Y redoes");
    h.key(KeyCode::End);
    h.ctrl('u');
    let first = text(&h).lines().next().unwrap_or_default().to_string();
    assert!(
        first.is_empty(),
        "Ctrl-U deleted to the start of the line: {first:?}"
    );
    h.key(KeyCode::Esc);
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('?'));
    let mut help = h.screen();
    for _ in 0..10 {
        h.key(KeyCode::PageDown);
        help.push_str(&h.screen());
    }
    assert!(
        help.contains("Ctrl-Z") && help.contains("Undo") && help.contains("Ctrl-Y"),
        "{help}"
    );
}

/// N in the library starts a copy of the selected config: a new name, no
/// uuid, no MACs (fresh ones at build), so it builds beside the original.
#[test]
fn a_config_is_copied_with_a_fresh_identity() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Home);
    while h
        .app
        .library
        .selected_entry()
        .is_some_and(|e| e.file != "web1.sxp")
    {
        h.key(KeyCode::Down);
    }
    h.key(KeyCode::Char('N'));
    assert!(
        h.screen().contains("Name of the copy of web1.sxp"),
        "{}",
        h.screen()
    );
    h.key(KeyCode::Enter);
    h.tick(0.0);
    let text = match &h.app.mode {
        domus::tui::app::Mode::Editor(ed) => ed.text(),
        _ => panic!("no editor:\n{}", h.screen()),
    };
    assert!(text.contains("(name web1-copy)"), "{text}");
    assert!(
        !text.contains("(mac ") && !text.contains("(uuid "),
        "{text}"
    );
    // The disk is still web1's: Ctrl-B's check says so before building.
    h.ctrl('b');
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("already attached to web1"), "{screen}");
    insta::assert_snapshot!("library_copy_checked", screen);
}

/// One rule for long messages: the editor's line is cut after a word and
/// points at the Events tab, as the status line does.
#[test]
fn the_editor_cuts_a_long_message_as_the_status_line_does() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('n'));
    h.type_text("longmsg\r");
    for _ in 0..3 {
        h.key(KeyCode::Down);
    }
    h.key(KeyCode::End);
    h.key(KeyCode::Left);
    h.type_text("x");
    h.ctrl('s');
    let screen = h.screen();
    let line = screen
        .lines()
        .find(|l| l.contains("saved longmsg.sxp"))
        .unwrap_or_else(|| panic!("{screen}"))
        .to_string();
    assert!(line.trim_end().ends_with("… (3: Events)"), "{line}");
    assert!(!line.contains("MiB, g…"), "cut after a whole word: {line}");
}

/// The PCI picker names each host device (vendor and device from pci.ids)
/// and its current driver.
#[test]
fn the_pci_picker_names_devices_and_drivers() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let root = d.config.parent().unwrap_or(&d.config).join("sys-pci");
    let dev = root.join("0000:00:1f.2");
    std::fs::create_dir_all(&dev).unwrap_or_else(|e| panic!("{e}"));
    for (f, v) in [
        ("vendor", "0x8086\n"),
        ("device", "0x2922\n"),
        ("class", "0x010601\n"),
    ] {
        std::fs::write(dev.join(f), v).unwrap_or_else(|e| panic!("{e}"));
    }
    let drivers = root.join("drivers/ahci");
    std::fs::create_dir_all(&drivers).unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(&drivers, dev.join("driver")).unwrap_or_else(|e| panic!("{e}"));
    let ids = root.join("pci.ids");
    std::fs::write(
        &ids,
        "8086  Intel Corporation\n\t2922  82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    h.worker.set_pci_root(root.clone(), Some(ids));
    select(&mut h, "web1");
    h.key(KeyCode::Char('a'));
    h.key(KeyCode::Up);
    h.key(KeyCode::Right);
    h.key(KeyCode::Right);
    h.tick(0.0);
    let screen = h.screen();
    assert!(
        screen.contains("0000:00:1f.2 driver ahci · Intel Corporation 82801IR/IO/IH"),
        "{screen}"
    );
}

/// From the newcomer trial: Esc in the theme picker returns to the theme
/// in use (also one chosen with :theme); Domain-0's footer offers no
/// console or edit; `<`/`>` sort only by columns on screen.
#[test]
fn theme_picker_footer_and_sort_fit_what_is_shown() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("theme light\r");
    h.key(KeyCode::Char('T'));
    h.key(KeyCode::Down);
    h.key(KeyCode::Esc);
    assert_eq!(h.app.theme.name, "light");
    select(&mut h, "Domain-0");
    let footer = h.screen().lines().last().unwrap_or_default().to_string();
    assert!(
        !footer.contains("c console") && !footer.contains("e edit"),
        "{footer}"
    );
    let mut narrow = sized(&d, (80, 24));
    let shown: Vec<domus::tui::table::Column> = domus::tui::table::visible_columns(80)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    for _ in 0..12 {
        narrow.key(KeyCode::Char('<'));
        assert!(
            shown.contains(&narrow.app.table.column()),
            "{:?}",
            narrow.app.table.column()
        );
    }
}

/// On a small terminal the Details' timeline scrolls back to the start.
#[test]
fn the_details_timeline_scrolls_at_80x24() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    build(&mut h, &d.config.join("web1.sxp"));
    let web1 = h
        .engine()
        .resolve("web1")
        .map(|i| i.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..6 {
        h.engine().pause(web1).unwrap_or_else(|e| panic!("{e}"));
        h.engine().unpause(web1).unwrap_or_else(|e| panic!("{e}"));
    }
    h.tick(1.0);
    select(&mut h, "web1");
    h.key(KeyCode::Enter);
    h.tick(0.0);
    let screen = h.screen();
    assert!(screen.contains("↑/↓ PgUp/PgDn the timeline"), "{screen}");
    assert!(
        !screen.contains("] created"),
        "the newest at first:\n{screen}"
    );
    h.key(KeyCode::Home);
    let screen = h.screen();
    assert!(
        screen.contains("] created"),
        "scrolled back to the start:\n{screen}"
    );
    // From the start, the first Down moves what is seen (the scroll stops
    // where the drawing does).
    h.key(KeyCode::Down);
    assert_ne!(h.screen(), screen, "Down after Home moves at once");
    h.key(KeyCode::End);
    assert!(!h.screen().contains("] created"));
}

/// The keys of questions, pickers and the shutdown menu are in the keymap
/// table, so the help lists them; and the shutdown menu's letters act.
#[test]
fn mode_keys_are_in_the_keymap_and_the_help() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char('?'));
    let mut help = h.screen();
    for _ in 0..12 {
        h.key(KeyCode::PageDown);
        help.push_str(&h.screen());
    }
    for want in [
        "Questions",
        "Lists to pick from",
        "Shutdown menu",
        "Power off",
        "Reboot (on_reboot applies)",
    ] {
        assert!(help.contains(want), "{want} missing from the help:\n{help}");
    }
    h.key(KeyCode::Esc);
    select(&mut h, "web1");
    h.key(KeyCode::Char('s'));
    h.key(KeyCode::Char('j'));
    h.key(KeyCode::Char('k'));
    let before = h
        .engine()
        .resolve("web1")
        .map(|i| i.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    h.key(KeyCode::Char('r'));
    h.tick(1.0);
    h.tick(1.0);
    // The sim's guest reboots at once and on_reboot restart builds it anew.
    let after = h
        .engine()
        .resolve("web1")
        .map(|i| i.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(before, after, "r rebooted web1:\n{}", h.screen());
}

/// A burst of library file events is one scan at a time (and one more if
/// files changed during it), not a scan per event.
#[test]
fn library_events_are_coalesced() {
    use domus::tui::action::{Action, Effect};
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let scans = |effects: &[Effect]| {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::LoadLibrary))
            .count()
    };
    let mut asked = 0;
    for _ in 0..500 {
        asked += scans(&h.app.update(Action::LibraryChanged));
    }
    assert_eq!(asked, 1, "one scan for the burst");
    let after = h.app.update(Action::Library(Vec::new()));
    assert_eq!(scans(&after), 1, "one more for what changed during it");
    let done = h.app.update(Action::Library(Vec::new()));
    assert_eq!(scans(&done), 0);
}

/// An override moves a command to another key: the key, the footer and
/// the help all follow; the old key does nothing.
#[test]
fn key_overrides_move_keys_footer_and_help() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let notes = h
        .app
        .keys
        .apply(Path::new("keys"), "domains.pause = P  # shifted\n");
    assert!(notes.is_empty(), "{notes:?}");
    select(&mut h, "web1");
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(!screen.contains("--p---"), "p no longer pauses:\n{screen}");
    assert!(screen.contains(" P pause"), "the footer names P:\n{screen}");
    h.key(KeyCode::Char('P'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(paused(&screen, "web1"), "{screen}");
    insta::assert_snapshot!("keys_overridden_pause", screen);
    h.key(KeyCode::Char('?'));
    let screen = h.screen();
    assert!(
        screen.contains("  P                Pause / unpause"),
        "the help names P:\n{screen}"
    );
}

/// A `:` line goes through the same rules as the keys: what does not fit
/// the domain's state is refused with the reason, and `:theme` alone
/// opens the picker as `T` does.
#[test]
fn palette_lines_meet_the_rules_of_the_keys() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("unpause web1\r");
    let screen = h.screen();
    assert!(
        screen.contains("not offered for unpause: web1 is not paused"),
        "{screen}"
    );
    h.key(KeyCode::Char(':'));
    h.type_text("pause Domain-0\r");
    assert!(h.screen().contains("Domain-0 cannot be paused"));
    h.key(KeyCode::Char(':'));
    h.type_text("theme\r");
    let screen = h.screen();
    assert!(
        screen.contains("Theme") && screen.contains("high-contrast"),
        "{screen}"
    );
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char(':'));
    h.type_text("pause web1\r");
    h.tick(1.0);
    let screen = h.screen();
    assert!(paused(&screen, "web1"), "{screen}");
    // `:pause` pauses, as `domus pause` does: a paused domain stays so.
    h.key(KeyCode::Char(':'));
    h.type_text("pause web1\r");
    h.tick(1.0);
    let screen = h.screen();
    assert!(paused(&screen, "web1"), "{screen}");
    assert!(
        screen.contains("web1 is paused already (:unpause web1 resumes it)"),
        "{screen}"
    );
}

/// Saved preferences naming a theme or a column that no longer exists
/// are said, and the defaults kept.
#[test]
fn stale_saved_preferences_are_reported() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    let prefs = domus::tui::prefs::Prefs {
        theme: Some("solarized".into()),
        sort: Some("BOGUS".into()),
        descending: true,
        filter: String::new(),
    };
    h.app.apply_prefs(&prefs, false);
    let said: Vec<&str> = h.app.events.iter().map(|e| e.text.as_str()).collect();
    assert!(
        said.contains(&"the saved theme 'solarized' is not installed; using dark"),
        "{said:?}"
    );
    assert!(
        said.contains(&"the saved sort column 'BOGUS' does not exist; sorting by ID"),
        "{said:?}"
    );
    assert_eq!(h.app.theme.name, "dark");
}

/// A domain that goes and comes back (a restart policy destroys, then
/// builds it again under a new id) is selected again, not whatever row slid
/// under the cursor meanwhile, unless the operator moved.
#[test]
fn the_selection_follows_a_domain_through_its_restart() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    let old = h
        .app
        .table
        .selected_domid()
        .unwrap_or_else(|| panic!("web1"));
    h.engine()
        .destroy(old.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    let between = h.app.table.selected_row().map(|r| r.name.clone());
    assert_ne!(between.as_deref(), Some("web1"), "web1 is gone for now");
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    let row = h
        .app
        .table
        .selected_row()
        .unwrap_or_else(|| panic!("a row"));
    assert_eq!(row.name, "web1");
    assert_ne!(row.view.info.domid, old.domid);
    // Moving meanwhile keeps the operator's choice.
    let now = row.view.info.domid;
    h.engine().destroy(now).unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    h.key(KeyCode::Char('g'));
    let chosen = h.app.table.selected_row().map(|r| r.name.clone());
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    assert_eq!(h.app.table.selected_row().map(|r| r.name.clone()), chosen);
}

/// At 80×24 a long name is cut with `…` where it must be, and the
/// overlays keep their keys line and their frame inside the screen: the
/// destroy question names the domain, details keep the state whole.
#[test]
fn at_80x24_overlays_with_a_long_name_keep_their_keys_and_state() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    let long = d.config.join("long.sxp");
    std::fs::write(
        &long,
        "(vm (name a-very-long-domain-name-for-the-test-01) (uuid 5a1e0000-0000-4000-8000-000000000001) (memory 64) (image (linux (kernel /k))) (device (vbd (uname file:/x.img) (dev xvda) (mode w))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    build(&mut h, &long);
    h.tick(1.0);
    select(&mut h, "a-very-long-domain-name-for-the-test-01");
    h.key(KeyCode::Char('d'));
    let screen = h.screen();
    assert!(
        screen.contains("Destroy a-very-long-domain-name-for-the-test-01 (domain 1)?"),
        "the whole name in the question:\n{screen}"
    );
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('m'));
    let screen = h.screen();
    assert!(screen.contains("Enter set · Esc cancel"), "{screen}");
    insta::assert_snapshot!("memory_form_80x24_long_name", screen);
    h.key(KeyCode::Esc);
    h.key(KeyCode::Enter);
    let screen = h.screen();
    assert!(
        screen.contains("-b---- (blocked)") || screen.contains("r----- (running)"),
        "{screen}"
    );
    assert!(screen.contains("vCPU · CPU"), "{screen}");
    insta::assert_snapshot!("details_80x24_long_name", screen);
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('x'));
    let screen = h.screen();
    assert!(screen.contains("Enter detach · Esc cancel"), "{screen}");
    // The frame of the table shows on both sides of the pop-up.
    let row = screen
        .lines()
        .find(|l| l.contains("xvda"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.starts_with('│') && row.ends_with('│'), "{screen}");
}

/// On a backend that counts I/O the table shows xentop's rates when they
/// fit (200 wide) or when `I` puts them first (120 wide); they sort, and
/// the details give rates and totals.
#[test]
fn io_columns_show_rates_sort_and_fill_the_details() {
    let d = dirs();
    let mut h = sized(&d, (120, 36));
    build(&mut h, &d.config.join("web1.sxp"));
    build(&mut h, &d.config.join("plan9.sxp"));
    h.tick(1.0);
    h.tick(1.0);
    assert!(!h.screen().contains("VBD_WR/s"), "not at 120 by default");
    h.key(KeyCode::Char('I'));
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("NETTX/s") && screen.contains("VBD_WR/s"),
        "{screen}"
    );
    assert!(
        !screen.contains("DEVICES"),
        "I/O in DEVICES' place:\n{screen}"
    );
    let web1 = screen
        .lines()
        .find(|l| l.contains("web1"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(web1.contains("K "), "a rate in K/s for web1: {web1}");
    let dom0 = screen
        .lines()
        .find(|l| l.contains("Domain-0"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        dom0.trim_end_matches('│').trim_end().ends_with('-'),
        "Domain-0 has no devices to count: {dom0}"
    );
    insta::assert_snapshot!("io_columns_120", screen);
    // Sorting by VBD_WR/s, highest first.
    while h.app.table.column() != domus::tui::table::Column::VbdWr {
        h.key(KeyCode::Char('>'));
    }
    if !h.app.table.descending {
        h.key(KeyCode::Char('r'));
    }
    let first = h.app.table.rows[h.app.table.order[0]].name.clone();
    assert_ne!(
        first, "Domain-0",
        "a domain without disks is not the busiest"
    );
    select(&mut h, "web1");
    h.key(KeyCode::Enter);
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains(" I/O net tx ") && screen.contains("disk rd "),
        "{screen}"
    );
    assert!(
        screen.contains("/s (net and disk, last "),
        "the I/O sparkline: {screen}"
    );
    // Not counted at all on a backend without the capability: no columns.
    h.key(KeyCode::Esc);
    h.app.hosts.0[0]
        .caps
        .0
        .remove(&domus::backend::Capability::IoStats);
    let screen = h.screen();
    assert!(!screen.contains("NETTX/s"), "{screen}");
}

/// A paste is text, never keys: on the table it is refused (pasted "dy"
/// destroys nothing), in an input it is typed, one line of it.
#[test]
fn a_paste_is_typed_into_inputs_and_never_run_as_keys() {
    use domus::tui::action::Action;
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.dispatch(Action::Paste("dy".into()));
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("web1") && !screen.contains("Destroy"),
        "{screen}"
    );
    assert!(screen.contains("paste ignored here"), "{screen}");
    h.key(KeyCode::Char('/'));
    h.dispatch(Action::Paste("plan\nq9".into()));
    assert_eq!(h.app.table.filter, "plan", "one line, the rest dropped");
    h.key(KeyCode::Enter);
    h.key(KeyCode::Char(':'));
    h.dispatch(Action::Paste("pause plan9term".into()));
    h.key(KeyCode::Enter);
    h.tick(1.0);
    assert!(paused(&h.screen(), "plan9term"), "{}", h.screen());
    // A number field keeps the digits; the editor takes a terminal's CR
    // line breaks as line breaks.
    h.key(KeyCode::Char('/'));
    h.key(KeyCode::Esc);
    select(&mut h, "web1");
    h.key(KeyCode::Char('m'));
    for _ in 0..4 {
        h.key(KeyCode::Backspace);
    }
    h.dispatch(Action::Paste(" 2x56".into()));
    assert!(h.screen().contains("target MiB: 256"), "{}", h.screen());
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::End);
    h.key(KeyCode::Char('e'));
    h.dispatch(Action::Paste("# one\r# two\r".into()));
    let screen = h.screen();
    let first = screen.lines().position(|l| l.contains("# one"));
    let second = screen.lines().position(|l| l.contains("# two"));
    assert!(
        first.zip(second).is_some_and(|(a, b)| b == a + 1),
        "two lines:\n{screen}"
    );
}

/// Details of a domain another process destroys close (they would take
/// keys while showing nothing); Esc always leaves the help, whatever the
/// keys file gave the details' close.
#[test]
fn details_close_when_their_domain_goes_and_esc_leaves_help() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    let web1 = h
        .app
        .table
        .selected_domid()
        .unwrap_or_else(|| panic!("web1"));
    h.key(KeyCode::Enter);
    h.engine()
        .destroy(web1.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("its details closed"), "{screen}");
    h.key(KeyCode::Char('4'));
    assert!(h.screen().contains("Gone ("), "keys reach the tabs again");
    let notes = h.app.keys.apply(Path::new("keys"), "details.close = k\n");
    assert!(notes.problems.is_empty(), "{notes:?}");
    h.key(KeyCode::Char('?'));
    h.key(KeyCode::Esc);
    assert!(!h.screen().contains("Help ·"), "{}", h.screen());
}

/// The newest answer takes the status line, also after an error; a
/// memory target above the maximum is refused in the form; a refused new
/// name is explained in its dialog.
#[test]
fn newer_answers_win_and_forms_explain_refusals() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    h.key(KeyCode::Char(':'));
    h.type_text("pause nosuch\r");
    assert!(h.screen().contains("no domain nosuch"));
    h.key(KeyCode::Char(':'));
    h.type_text("cancel web1\r");
    let screen = h.screen();
    assert!(screen.contains("nothing waits on web1"), "{screen}");
    select(&mut h, "web1");
    h.key(KeyCode::Char('m'));
    for _ in 0..4 {
        h.key(KeyCode::Backspace);
    }
    h.type_text("99999\r");
    let screen = h.screen();
    assert!(screen.contains("Memory target"), "the form stays: {screen}");
    assert!(
        screen.contains("99999 MiB is above the maximum, 512 MiB"),
        "{screen}"
    );
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('n'));
    h.type_text("web1\r");
    let screen = h.screen();
    assert!(
        screen.contains("✘ web1.sxp already exists: choose another name"),
        "{screen}"
    );
}

/// `:restore` names the domain it brought back, and a console whose
/// domain was restarted says where it went.
#[test]
fn restore_names_the_domain_and_a_restarted_console_says_where() {
    let d = dirs();
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    h.key(KeyCode::Char('c'));
    h.type_text("reboot\r");
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("restarted as domain") && screen.contains("Enter follows it"),
        "{screen}"
    );
    h.ctrl(']');
    let file = d.config.join("web1.save");
    h.key(KeyCode::Char(':'));
    h.type_text(&format!("save web1 {}\r", file.display()));
    h.tick(1.0);
    h.key(KeyCode::Char(':'));
    h.type_text(&format!("restore {}\r", file.display()));
    h.tick(1.0);
    let screen = h.screen();
    assert!(screen.contains("built web1 as domain"), "{screen}");
}

/// At 80×24 a line too long for the editor's error row or the details is
/// cut after a word with `…`, not mid-word.
#[test]
fn at_80x24_long_lines_end_in_an_ellipsis() {
    let d = dirs();
    let mut h = sized(&d, (80, 24));
    let long = d.config.join("chatty.sxp");
    std::fs::write(
        &long,
        "(vm (name chatty) (uuid 5a1e0000-0000-4000-8000-000000000002) (memory 64) (image (linux (kernel /boot/vmlinuz-6.1.0-with-a-long-name) (args \"console=hvc0 root=/dev/xvda1 rw quiet loglevel=3 systemd.unit=multi-user.target\"))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    build(&mut h, &long);
    h.tick(1.0);
    select(&mut h, "chatty");
    h.key(KeyCode::Enter);
    let screen = h.screen();
    let kernel = screen
        .lines()
        .find(|l| l.contains("kernel /boot/vmlinuz"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(kernel.contains("…"), "cut with a mark: {kernel}");
    h.key(KeyCode::Esc);
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::Char('n'));
    h.type_text("broken\r");
    h.ctrl('a');
    h.type_text("(vm (name broken) (memory lots-and-lots-of-memory-please))");
    let screen = h.screen();
    let diag = screen
        .lines()
        .find(|l| l.contains('✘'))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        diag.trim_end().ends_with('…') || diag.trim_end().len() < 78,
        "the error row is whole or ends in …: {diag}"
    );
}

/// From a review: a terminal a few rows high draws the details without a
/// panic; a click makes the operator's choice stick through a domain's
/// return; a save's answer marks saved what was written, not what was typed since.
#[test]
fn review_findings_hold() {
    use domus::tui::action::{Action, Done};
    let d = dirs();
    for size in [(20, 5), (80, 2), (3, 3)] {
        let mut h = sized(&d, size);
        build(&mut h, &d.config.join("web1.sxp"));
        h.tick(1.0);
        h.key(KeyCode::Down);
        h.key(KeyCode::Enter);
        let _ = h.screen();
    }
    let mut h = started(&d, "dark", false);
    select(&mut h, "web1");
    let web1 = h
        .app
        .table
        .selected_domid()
        .unwrap_or_else(|| panic!("web1"));
    h.engine()
        .destroy(web1.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    let (top, _) = domus::tui::ui::layout::table_rows(h.app.size);
    h.click(10, top); // the first row: Domain-0
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    assert_eq!(
        h.app
            .table
            .selected_row()
            .map(|r| r.name.clone())
            .as_deref(),
        Some("Domain-0"),
        "the click stands"
    );
    h.key(KeyCode::Char('2'));
    h.key(KeyCode::End);
    h.key(KeyCode::Char('e'));
    h.type_text("# typed after the save left");
    let path = d.config.join("web1.sxp");
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    h.dispatch(Action::Done(Done::Saved {
        path,
        text: written,
        result: Ok(()),
        then_build: false,
    }));
    assert!(h.screen().contains("[modified]"), "{}", h.screen());
}

/// A narrow terminal cuts the header after a word with `…`; a filter or
/// palette line longer than the screen shows its end, where the cursor is.
#[test]
fn narrow_header_and_long_inputs() {
    use domus::tui::action::Action;
    let d = dirs();
    let mut h = sized(&d, (40, 10));
    build(&mut h, &d.config.join("web1.sxp"));
    h.tick(1.0);
    let screen = h.screen();
    let summary = screen
        .lines()
        .find(|l| l.contains("domains:") || l.contains("domain:"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(summary.trim_end().ends_with('…'), "{summary}");
    h.key(KeyCode::Char(':'));
    h.dispatch(Action::Paste(format!("create {}END", "x".repeat(80))));
    let screen = h.screen();
    assert!(screen.contains("xxxEND▏"), "the end is shown:\n{screen}");
}
