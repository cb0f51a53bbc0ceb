//! The fleet in the TUI, deterministic: the harness's simulated host, a
//! second simulated host, and a host that cannot be reached. (The same
//! with real libvirt daemons is tests/libvirt_fleet.rs.)

use std::path::Path;

use crossterm::event::KeyCode;
use domus::fleet::{HostId, HostSpec, Member, Target};
use domus::tui::testing::{Harness, HarnessOptions, sim_engine};

struct Dirs {
    _root: tempfile::TempDir,
    config: std::path::PathBuf,
    recovery: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    Dirs {
        config: root.path().join("domains"),
        recovery: root.path().join("recovery"),
        _root: root,
    }
}

fn spec(name: &str, uri: &str) -> HostSpec {
    HostSpec {
        name: name.into(),
        target: Target::Libvirt(uri.into()),
    }
}

/// `local` (the harness's), `beta` (another simulated host) and `gamma`,
/// whose daemon refuses every connection.
fn fleet(d: &Dirs, size: (u16, u16)) -> Harness {
    Harness::fleet(
        HarnessOptions {
            size,
            theme: "dark",
            read_only: false,
            config_dir: &d.config,
            recovery_dir: &d.recovery,
            state_dir: None,
        },
        |clock| {
            let (_, beta) = sim_engine(clock);
            vec![
                Member::open(
                    spec("beta", "qemu+tcp://beta/system"),
                    beta,
                    Box::new(|| Err("no second connection in this test".into())),
                ),
                Member::lazy(
                    spec("gamma", "qemu+tcp://gamma/system"),
                    Box::new(|| {
                        Err(
                            "unable to connect to server at 'gamma:16509': Connection refused"
                                .into(),
                        )
                    }),
                ),
            ]
        },
    )
}

fn build_on(h: &Harness, host: u16, file: &Path) {
    let (config, _) = domus::config::load_file(file).unwrap_or_else(|e| panic!("{e}"));
    let e = h
        .worker
        .fleet()
        .engine(HostId(host))
        .unwrap_or_else(|e| panic!("{e}"));
    e.create(&config, Some(file))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn select(h: &mut Harness, host: &str, name: &str) {
    h.key(KeyCode::Home);
    for _ in 0..h.app.table.order.len() {
        if let Some(r) = h.app.table.selected_row()
            && r.name == name
            && h.app.hosts.name(r.host) == host
        {
            return;
        }
        h.key(KeyCode::Down);
    }
    panic!("{host}:{name} is not in the table");
}

fn row_of<'a>(screen: &'a str, host: &str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.contains(&format!(" {host} ")) && l.contains(&format!(" {name} ")))
}

#[test]
fn every_host_shows_with_its_host_and_an_unreachable_one_says_so() {
    let d = dirs();
    let mut h = fleet(&d, (120, 30));
    build_on(&h, 0, &d.config.join("web1.sxp"));
    build_on(&h, 1, &d.config.join("web1.sxp"));
    build_on(&h, 1, &d.config.join("plan9.sxp"));
    h.tick(1.0);
    h.tick(2.0);
    let screen = h.screen();
    assert!(screen.contains("HOST"), "{screen}");
    // web1 on two hosts: two rows, each with its host.
    assert!(row_of(&screen, "local", "web1").is_some(), "{screen}");
    assert!(row_of(&screen, "beta", "web1").is_some(), "{screen}");
    assert!(row_of(&screen, "beta", "plan9term").is_some(), "{screen}");
    assert!(screen.contains("gamma unreachable"), "{screen}");
    insta::assert_snapshot!("fleet", screen);

    // Details of an unreachable host say why (on its header line).
    select(&mut h, "beta", "plan9term");
    let screen = h.screen();
    assert!(
        screen.contains("beta: simhost · sim backend"),
        "the header shows the selected host: {screen}"
    );

    // A filter by host.
    h.key(KeyCode::Char('/'));
    h.type_text("host:bet\r");
    let screen = h.screen();
    assert!(row_of(&screen, "local", "web1").is_none(), "{screen}");
    assert!(row_of(&screen, "beta", "web1").is_some(), "{screen}");
    assert!(
        screen.contains("Domains (3 of 5)")
            || screen.contains("(3/5)")
            || h.app.table.order.len() == 3,
        "{screen}"
    );
    h.key(KeyCode::Char('/'));
    for _ in 0..8 {
        h.key(KeyCode::Backspace);
    }
    h.key(KeyCode::Enter);
    assert_eq!(h.app.table.order.len(), 5);
}

#[test]
fn a_bulk_pause_spans_hosts_with_a_result_per_domain() {
    let d = dirs();
    let mut h = fleet(&d, (120, 30));
    build_on(&h, 0, &d.config.join("web1.sxp"));
    build_on(&h, 1, &d.config.join("web1.sxp"));
    build_on(&h, 1, &d.config.join("plan9.sxp"));
    h.tick(1.0);
    select(&mut h, "local", "web1");
    h.key(KeyCode::Char(' '));
    select(&mut h, "beta", "web1");
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    let screen = h.screen();
    let paused =
        |host: &str, name: &str| row_of(&screen, host, name).is_some_and(|l| l.contains("--p---"));
    assert!(paused("local", "web1"), "{screen}");
    assert!(paused("beta", "web1"), "{screen}");
    assert!(!paused("beta", "plan9term"), "{screen}");
    // Each domain's result, named with its host.
    assert!(
        screen.contains("local:web1") && screen.contains("beta:web1"),
        "{screen}"
    );
    insta::assert_snapshot!("fleet_bulk_pause", screen);
    // The hosts really did it.
    for host in [0, 1] {
        let e = h
            .worker
            .fleet()
            .engine(HostId(host))
            .unwrap_or_else(|e| panic!("{e}"));
        let v = e.resolve("web1").unwrap_or_else(|e| panic!("{e}"));
        assert!(v.flags.paused, "web1 on host {host}");
    }
    // The palette names a host's domain as HOST:NAME.
    h.key(KeyCode::Char(':'));
    h.type_text("pause beta:plan9term\r");
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        row_of(&screen, "beta", "plan9term").is_some_and(|l| l.contains("--p---")),
        "{screen}"
    );
}

#[test]
fn at_80x24_the_fleet_keeps_host_and_name() {
    let d = dirs();
    let mut h = fleet(&d, (80, 24));
    build_on(&h, 1, &d.config.join("web1.sxp"));
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(row_of(&screen, "beta", "web1").is_some(), "{screen}");
    insta::assert_snapshot!("fleet_80x24", screen);
}

#[test]
fn long_host_names_are_whole_where_there_is_room() {
    let d = dirs();
    let mut h = Harness::fleet(
        HarnessOptions {
            size: (120, 30),
            theme: "dark",
            read_only: false,
            config_dir: &d.config,
            recovery_dir: &d.recovery,
            state_dir: None,
        },
        |clock| {
            let (_, other) = sim_engine(clock);
            vec![Member::open(
                spec("production-web-east", "qemu+tcp://web/system"),
                other,
                Box::new(|| Err("no second connection in this test".into())),
            )]
        },
    );
    build_on(&h, 1, &d.config.join("web1.sxp"));
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        row_of(&screen, "production-web-east", "web1").is_some(),
        "{screen}"
    );
    // The destroy question says which host's domain it is.
    select(&mut h, "production-web-east", "web1");
    h.key(KeyCode::Char('d'));
    let screen = h.screen();
    assert!(screen.contains("on production-web-east"), "{screen}");
}
