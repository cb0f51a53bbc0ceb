//! Interrupted work leaves nothing behind: `domus create` killed with
//! SIGKILL at every stage of the construction (the `DOMUS_KILL_AT` kill
//! points) and at random moments on real QEMU; several `domus create` of
//! one name at once; a destroy racing another process's refresh. After the
//! next domus command there is no domain without a record, no QEMU domus
//! does not know, no duplicate name, and a line for each repair.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::guests::*;
use domus::engine::JournalEntry;

struct Host {
    root: tempfile::TempDir,
    backend: &'static str,
}

impl Host {
    fn new(backend: &'static str) -> Host {
        Host {
            root: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
            backend,
        }
    }

    fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }

    fn run_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }

    fn domus(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_domus"));
        c.args(["--backend", self.backend, "--state-dir"])
            .arg(self.state())
            .arg("--runtime-dir")
            .arg(self.run_dir());
        c.env_remove("DOMUS_KILL_AT")
            .env_remove("DOMUS_SIM_FAULTS")
            .env_remove("DOMUS_SIM_SLOW");
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.domus()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("domus {args:?}: {e}"))
    }

    fn config(&self, name: &str) -> PathBuf {
        let p = self.root.path().join(format!("{name}.sxp"));
        let text = match self.backend {
            "qemu" => guest_config(name, ""),
            _ => format!(
                "(vm (name {name}) (memory 64) (image (linux (kernel /k)))
                   (device (vbd (uname file:/srv/{name}.img) (dev xvda) (mode w))))"
            ),
        };
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// `domus list --json` as (name, managed) pairs (Domain-0 left out).
    fn domains(&self) -> Vec<(String, bool)> {
        let o = self.out(&["list", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
        v["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["domid"] != 0)
            .map(|d| {
                (
                    d["name"].as_str().unwrap_or_default().to_string(),
                    d["managed"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    }

    /// What must hold after any interruption, once the next command ran:
    /// every domain has a record, names are unique, nothing is in flight,
    /// and no QEMU runs that domus does not list.
    fn assert_clean(&self, what: &str) {
        let doms = self.domains();
        assert!(
            doms.iter().all(|(_, managed)| *managed),
            "{what}: a domain without a record: {doms:?}"
        );
        let mut names: Vec<&String> = doms.iter().map(|(n, _)| n).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "{what}: a duplicate name: {doms:?}");
        let store = domus::store::Store::open(&self.state(), self.backend)
            .unwrap_or_else(|e| panic!("{e}"));
        let intents = store.read(|tx| tx.intents()).unwrap_or_default();
        assert!(intents.is_empty(), "{what}: left in flight: {intents:?}");
        if self.backend == "qemu" {
            let qemus = qemu_processes_under(&self.run_dir());
            assert_eq!(
                qemus.len(),
                doms.len(),
                "{what}: a QEMU domus does not know: {qemus:?} vs {doms:?}"
            );
        }
    }

    fn journal(&self, name: &str) -> Vec<JournalEntry> {
        let o = self.out(&["events", "--json", "--all", "--limit", "10000", name]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Kill `domus create` at every stage boundary on the simulator.
#[test]
fn create_killed_at_every_stage_leaves_nothing_behind() {
    let stages = [
        "started",
        "validate",
        "check resources",
        "create domain",
        "build image",
        "create devices",
        "device model",
        "configure fields",
        "unpause",
        "record",
        "committed",
    ];
    let (mut tries, mut repairs) = (0, 0);
    for stage in stages {
        let h = Host::new("sim");
        let cfg = h.config("web1");
        let o = h
            .domus()
            .env("DOMUS_KILL_AT", format!("create:{stage}"))
            .arg("create")
            .arg(&cfg)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        tries += 1;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(9),
            "{stage}: killed there"
        );
        // The next command repairs and says so (except when there is
        // nothing to repair: killed after the commit).
        let next = h.out(&["list"]);
        let said = String::from_utf8_lossy(&next.stderr).into_owned();
        if stage != "committed" {
            assert!(said.contains("repaired:"), "{stage}: {said}");
            repairs += said.matches("repaired:").count();
        }
        h.assert_clean(stage);
        // Finished (after the backend built it) or rolled back: the name
        // is usable either way.
        let has = h.domains().iter().any(|(n, _)| n == "web1");
        let finished = matches!(stage, "record" | "committed");
        assert_eq!(has, finished, "{stage}: {said}");
        if !has {
            let again = h.out(&["create", cfg.to_str().unwrap_or_default()]);
            assert!(
                again.status.success(),
                "{stage}: rebuild: {}",
                String::from_utf8_lossy(&again.stderr)
            );
        }
        let journal = h.journal("web1");
        assert!(
            stage == "committed" || journal.iter().any(|e| e.event.kind() == "repaired"),
            "{stage}: the repair is in the journal"
        );
    }
    eprintln!("create killed at each stage: {tries} tries, {repairs} repairs, 0 leaks");
}

/// Kill `domus destroy` before it touches the backend and after: the next
/// command finishes the destroy.
#[test]
fn destroy_killed_midway_is_finished_by_the_next_command() {
    for stage in ["started", "committed"] {
        let h = Host::new("sim");
        let cfg = h.config("web1");
        assert!(
            h.out(&["create", cfg.to_str().unwrap_or_default()])
                .status
                .success()
        );
        let o = h
            .domus()
            .env("DOMUS_KILL_AT", format!("destroy:{stage}"))
            .args(["destroy", "web1"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(9)
        );
        h.assert_clean(stage);
        assert!(h.domains().is_empty(), "{stage}: {:?}", h.domains());
        let journal = h.journal("web1");
        let kinds: Vec<&str> = journal.iter().map(|e| e.event.kind()).collect();
        assert!(kinds.contains(&"destroyed"), "{stage}: {kinds:?}");
        assert!(
            !kinds.contains(&"vanished"),
            "{stage}: a destroy is a destroy: {kinds:?}"
        );
    }
}

/// Several `domus create` of one name at once yield exactly one domain.
fn same_name_creates(backend: &'static str, rounds: usize, at_once: usize) {
    let h = Host::new(backend);
    let cfg = h.config("dup");
    for round in 0..rounds {
        let kids: Vec<_> = (0..at_once)
            .map(|_| {
                h.domus()
                    .arg("create")
                    .arg(&cfg)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let outs: Vec<Output> = kids
            .into_iter()
            .map(|k| k.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        let errs: Vec<String> = outs
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(won, 1, "{backend} round {round}: {errs:?}");
        assert!(
            errs.iter().all(|e| e.contains("already exists")),
            "{backend} round {round}: the others say why: {errs:?}"
        );
        h.assert_clean(&format!("round {round}"));
        assert_eq!(h.domains().len(), 1);
        assert!(h.out(&["destroy", "dup"]).status.success());
    }
    eprintln!(
        "{backend}: {rounds} rounds of {at_once} creates of one name at once: exactly one domain each"
    );
}

#[test]
fn same_name_creates_at_once_give_one_domain_on_the_simulator() {
    same_name_creates("sim", 20, 4);
}

#[test]
fn same_name_creates_at_once_give_one_domain_on_qemu() {
    announce_accel();
    same_name_creates("qemu", 4, 3);
}

/// Configs with one fixed uuid and different names, created at once (a
/// slow build keeps both in flight): one domain, and the other says why.
/// Neither may take the other's record with it when it fails.
#[test]
fn creates_of_one_fixed_uuid_at_once_give_one_domain() {
    let h = Host::new("sim");
    let uuid = "6f1c3a52-1f0e-4a57-9a3b-2d8c5e7f9a10";
    let cfgs: Vec<PathBuf> = ["twin-a", "twin-b"]
        .iter()
        .map(|name| {
            let p = h.root.path().join(format!("{name}.sxp"));
            let text =
                format!("(vm (name {name}) (uuid {uuid}) (memory 64) (image (linux (kernel /k))))");
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
            p
        })
        .collect();
    for round in 0..5 {
        let kids: Vec<_> = cfgs
            .iter()
            .map(|cfg| {
                h.domus()
                    .env("DOMUS_SIM_SLOW", "build_image:1")
                    .arg("create")
                    .arg(cfg)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let outs: Vec<Output> = kids
            .into_iter()
            .map(|k| k.wait_with_output().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let won: Vec<&Output> = outs.iter().filter(|o| o.status.success()).collect();
        let errs: Vec<String> = outs
            .iter()
            .filter(|o| !o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {errs:?}");
        assert!(
            errs.iter()
                .all(|e| e.contains(&format!("uuid {uuid} is already used"))),
            "round {round}: the other says why: {errs:?}"
        );
        h.assert_clean(&format!("round {round}"));
        let doms = h.domains();
        assert_eq!(doms.len(), 1, "round {round}: {doms:?}");
        assert!(h.out(&["destroy", &doms[0].0]).status.success());
    }
}

/// A rename-restart killed after it renamed the old domain (and while it
/// builds the new one): the next command keeps the renamed domain, destroys
/// the half-built one and never renames the kept one again.
#[test]
fn a_rename_restart_killed_midway_keeps_the_old_domain_once() {
    for stage in ["renamed", "create devices"] {
        let h = Host::new("sim");
        let cfg = h.root.path().join("rr.sxp");
        std::fs::write(
            &cfg,
            "(vm (name rr) (memory 64) (on_poweroff rename-restart) (image (linux (kernel /k))))",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            h.out(&["create", &cfg.display().to_string()])
                .status
                .success()
        );
        let killed = h
            .domus()
            .env("DOMUS_KILL_AT", format!("policy:{stage}"))
            .args(["shutdown", "--wait", "rr"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!killed.status.success(), "{stage}: not killed");
        let repair = h.out(&["list"]);
        let said = String::from_utf8_lossy(&repair.stderr);
        assert!(
            said.contains("the rename-restart of rr was interrupted")
                && said.contains("kept as rr-1"),
            "{stage}: {said}"
        );
        h.assert_clean(stage);
        for _ in 0..2 {
            let names: Vec<String> = h.domains().into_iter().map(|(n, _)| n).collect();
            assert_eq!(names, ["rr-1"], "{stage}");
        }
    }
}

/// A destroy in one process while another lists: recorded as destroyed by
/// whoever sees it, never as vanished.
#[test]
fn a_destroy_racing_a_refresh_is_a_destroy() {
    let h = Host::new("sim");
    let lister = {
        let state = h.state();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let t = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new(env!("CARGO_BIN_EXE_domus"))
                    .args(["--backend", "sim", "--state-dir"])
                    .arg(&state)
                    .arg("list")
                    .output();
            }
        });
        (stop, t)
    };
    for i in 0..15 {
        let name = format!("race{i}");
        let cfg = h.config(&name);
        for args in [
            &["create", cfg.to_str().unwrap_or_default()][..],
            &["destroy", &name],
        ] {
            let o = h.out(args);
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
    lister.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = lister.1.join();
    for i in 0..15 {
        let kinds: Vec<String> = h
            .journal(&format!("race{i}"))
            .iter()
            .map(|e| e.event.kind().to_string())
            .collect();
        assert!(kinds.contains(&"destroyed".to_string()), "{kinds:?}");
        assert!(!kinds.contains(&"vanished".to_string()), "{kinds:?}");
    }
}

/// `domus create` killed at random moments on real QEMU (TCG here).
#[test]
fn qemu_create_killed_at_random_moments_leaves_no_qemu_behind() {
    announce_accel();
    let h = Host::new("qemu");
    let cfg = h.config("victim");
    let (mut tries, mut repairs) = (0, 0);
    // First at the stages where QEMU is already running.
    for stage in ["create devices", "unpause"] {
        let o = h
            .domus()
            .env("DOMUS_KILL_AT", format!("create:{stage}"))
            .arg("create")
            .arg(&cfg)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&o.status),
            Some(9)
        );
        assert_eq!(
            qemu_processes_under(&h.run_dir()).len(),
            1,
            "{stage}: QEMU was running when its builder died"
        );
        tries += 1;
        let next = h.out(&["list"]);
        let said = String::from_utf8_lossy(&next.stderr).into_owned();
        assert!(said.contains("partial domain"), "{stage}: {said}");
        repairs += said.matches("repaired:").count();
        h.assert_clean(stage);
        assert!(qemu_processes_under(&h.run_dir()).is_empty(), "{stage}");
    }
    // Then at random moments from 10 to 500 ms (deterministic ones).
    let mut x: u64 = 0x9e37_79b9;
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let after = Duration::from_millis(10 + x % 490);
        let mut child = h
            .domus()
            .arg("create")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Instant::now();
        while t.elapsed() < after {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
        tries += 1;
        let next = h.out(&["list"]);
        repairs += String::from_utf8_lossy(&next.stderr)
            .matches("repaired:")
            .count();
        h.assert_clean(&format!("killed after {after:?}"));
        // Clear the way for the next try.
        if h.domains().iter().any(|(n, _)| n == "victim") {
            assert!(h.out(&["destroy", "victim"]).status.success());
        }
        assert!(qemu_processes_under(&h.run_dir()).is_empty());
    }
    eprintln!("qemu create killed at random moments: {tries} tries, {repairs} repairs, 0 leaks");
}
