use std::os::unix::fs::PermissionsExt;

use super::journal::Subject;
use super::*;
use crate::config::DomainConfig;

fn record(name: &str) -> DomainRecord {
    let mut r = DomainRecord::new(
        uuid::Uuid::new_v4(),
        DomainConfig::new_linux(name, "/boot/vmlinuz"),
        1,
    );
    r.phase = Phase::Live;
    r
}

fn cli() -> Source {
    Source::new(SourceKind::Cli)
}

#[test]
fn a_new_store_is_private_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let store = Store::open(dir.path(), "sim").unwrap();
    nix::sys::stat::umask(old);
    store
        .write(|tx| {
            tx.append(1, &Subject::default(), cli(), &DomainEvent::Paused)
                .map(drop)
        })
        .unwrap();
    for f in ["domus.db", "domus.db-wal"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
    }
    let conn = store.lock();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_symlinked_store_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious");
    std::fs::write(&target, b"keep me").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("domus.db")).unwrap();
    let err = Store::open(dir.path(), "sim").err().unwrap().to_string();
    assert!(err.contains("symlink"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
}

#[test]
fn two_live_records_cannot_share_a_name_but_a_gone_one_can() {
    let store = Store::memory("sim").unwrap();
    let a = record("web1");
    store.write(|tx| tx.put_record(&a).map(drop)).unwrap();
    let b = record("web1");
    let err = store.write(|tx| tx.put_record(&b).map(drop)).unwrap_err();
    assert!(matches!(err, StoreError::NameTaken { .. }), "{err}");
    let mut gone = a.clone();
    gone.phase = Phase::Gone;
    store.write(|tx| tx.put_record(&gone).map(drop)).unwrap();
    store.write(|tx| tx.put_record(&b).map(drop)).unwrap();
    // Another host's names are its own.
    let other = Store::memory("qemu").unwrap();
    other
        .write(|tx| tx.put_record(&record("web1")).map(drop))
        .unwrap();
}

#[test]
fn the_device_index_finds_who_holds_a_disk() {
    let store = Store::memory("sim").unwrap();
    let mut a = record("a");
    a.config.devices = vec![crate::config::DeviceSpec::Vbd(crate::config::Vbd {
        uname: "file:/srv/a.img".parse().unwrap(),
        dev: "xvda".into(),
        mode: crate::config::VbdMode::ReadWrite,
        cdrom: false,
        extra: vec![],
    })];
    store.write(|tx| tx.put_record(&a).map(drop)).unwrap();
    let key = DeviceKey::of(&a.config.devices[0]);
    let users = store.read(|tx| tx.device_users(&key, None)).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, "a");
    assert_eq!(users[0].label, "xvda");
    assert!(
        store
            .read(|tx| tx.device_users(&key, Some(a.uuid)))
            .unwrap()
            .is_empty()
    );
    // Gone domains hold nothing.
    let mut gone = a.clone();
    gone.phase = Phase::Gone;
    store.write(|tx| tx.put_record(&gone).map(drop)).unwrap();
    assert!(
        store
            .read(|tx| tx.device_users(&key, None))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_journal_keeps_order_and_filters_by_domain() {
    let store = Store::memory("sim").unwrap();
    let u = uuid::Uuid::new_v4();
    let one = Subject {
        domid: Some(1),
        uuid: Some(u),
        name: Some("a".into()),
    };
    store
        .write(|tx| {
            tx.append(1, &one, cli(), &DomainEvent::Paused)?;
            tx.append(2, &Subject::default(), cli(), &DomainEvent::Destroyed)?;
            tx.append(3, &one, cli(), &DomainEvent::Unpaused)
        })
        .unwrap();
    let all = store
        .read(|tx| tx.journal(&JournalFilter::default()))
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let mine = store
        .read(|tx| {
            tx.journal(&JournalFilter {
                uuid: Some(u),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(
        mine.iter().map(|e| e.event.clone()).collect::<Vec<_>>(),
        vec![DomainEvent::Paused, DomainEvent::Unpaused]
    );
    let newest = store
        .read(|tx| {
            tx.journal(&JournalFilter {
                limit: Some(1),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(
        newest[0].event,
        DomainEvent::Unpaused,
        "limit keeps the newest"
    );
    let after = store
        .read(|tx| {
            tx.journal(&JournalFilter {
                after: Some(all[1].seq),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(after.len(), 1);
}

#[test]
fn old_events_are_pruned_by_age() {
    let store = Store::memory("sim").unwrap();
    let day = 86_400 * crate::clock::NS_PER_SEC;
    store
        .write(|tx| {
            tx.append(day, &Subject::default(), cli(), &DomainEvent::Paused)?;
            tx.append(40 * day, &Subject::default(), cli(), &DomainEvent::Unpaused)?;
            tx.prune(40 * day)
        })
        .unwrap();
    let left = store
        .read(|tx| tx.journal(&JournalFilter::default()))
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event, DomainEvent::Unpaused);
}

#[test]
fn concurrent_writers_lose_nothing_and_keep_one_order() {
    let dir = tempfile::tempdir().unwrap();
    // The schema exists before the writers race.
    drop(Store::open(dir.path(), "sim").unwrap());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let path = dir.path().to_path_buf();
            std::thread::spawn(move || {
                let store = Store::open(&path, "sim").unwrap();
                for i in 0..200 {
                    let msg = format!("{w}:{i}");
                    store
                        .write(|tx| {
                            tx.append(
                                1,
                                &Subject::default(),
                                cli(),
                                &DomainEvent::Warning {
                                    message: msg.clone(),
                                },
                            )
                            .map(drop)
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let store = Store::open(dir.path(), "sim").unwrap();
    let all = store
        .read(|tx| tx.journal(&JournalFilter::default()))
        .unwrap();
    assert_eq!(all.len(), 800);
    for w in 0..4 {
        let mine: Vec<usize> = all
            .iter()
            .filter_map(|e| match &e.event {
                DomainEvent::Warning { message } => message
                    .strip_prefix(&format!("{w}:"))
                    .and_then(|i| i.parse().ok()),
                _ => None,
            })
            .collect();
        assert_eq!(mine, (0..200).collect::<Vec<_>>(), "writer {w} in order");
    }
}

#[test]
fn an_intent_is_taken_over_by_exactly_one_process() {
    let store = Store::memory("sim").unwrap();
    let dead = Owner {
        pid: u32::MAX - 3,
        start: 5,
        kind: SourceKind::Cli,
    };
    let intent = Intent {
        id: 0,
        op: OpKind::Create,
        uuid: None,
        name: Some("web1".into()),
        domid: None,
        stage: "started".into(),
        owner: dead,
        started_ns: 1,
        detail: None,
    };
    let id = store.write(|tx| tx.insert_intent(&intent)).unwrap();
    let me = Owner::me(SourceKind::Repair);
    assert!(store.write(|tx| tx.reown_intent(id, dead, me)).unwrap());
    assert!(!store.write(|tx| tx.reown_intent(id, dead, me)).unwrap());
    store
        .write(|tx| tx.advance_intent(id, "build image", Some(7)))
        .unwrap();
    let got = store.read(|tx| tx.intent(id)).unwrap().unwrap();
    assert_eq!(
        (got.stage.as_str(), got.domid, got.owner),
        ("build image", Some(7), me)
    );
}

#[test]
fn a_damaged_store_is_moved_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("domus.db"), vec![0x5a; 8192]).unwrap();
    let mut store = Store::open(dir.path(), "sim").unwrap();
    let notes = store.take_notes();
    assert!(notes.iter().any(|n| n.contains("damaged")), "{notes:?}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept for inspection");
    assert!(store.first_sight().unwrap(), "records must be rebuilt");
    assert!(!store.first_sight().unwrap());
}

#[test]
fn old_json_records_are_imported_once_with_their_timelines() {
    let dir = tempfile::tempdir().unwrap();
    let u = uuid::Uuid::new_v4();
    let json = serde_json::json!({
        "live": {
            u.to_string(): {
                "uuid": u, "name": "web1",
                "config": "(vm (name web1) (image (linux (kernel /boot/vmlinuz))))",
                "source": null, "domid": 3,
                "timeline": [
                    {"at_ns": 5, "domid": 3, "event": {"event": "created", "image": "linux", "memory_mib": 128, "vcpus": 1}},
                    {"at_ns": 6, "domid": 3, "event": {"event": "vanished"}}
                ],
                "last_restart_ns": null, "restarts": 0, "handled_shutdown": null
            }
        },
        "retired": []
    });
    std::fs::write(dir.path().join("engine-sim.json"), json.to_string()).unwrap();
    let mut store = Store::open(dir.path(), "sim").unwrap();
    store.migrate_json(dir.path()).unwrap();
    assert!(store.take_notes().iter().any(|n| n.contains("imported 1")));
    assert!(dir.path().join("engine-sim.json.migrated").exists());
    let rec = store.read(|tx| tx.record(u)).unwrap().unwrap();
    assert_eq!(
        (rec.name.as_str(), rec.domid, rec.phase),
        ("web1", Some(3), Phase::Live)
    );
    let events = store
        .read(|tx| {
            tx.journal(&JournalFilter {
                uuid: Some(u),
                ..Default::default()
            })
        })
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].event, DomainEvent::Vanished { cause: None });
}

/// A live record whose config would not read back (a MAC twice) is
/// refused; one stored by a build that wrote what this one cannot read
/// keeps its stored text through later writes.
#[test]
fn configs_that_would_not_read_back_are_never_stored_over_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "sim").unwrap();
    let mut r = record("twice");
    let vif = crate::config::DeviceSpec::Vif(crate::config::Vif {
        mac: "00:16:3e:00:00:07".parse().ok(),
        bridge: None,
        ip: None,
        extra: Vec::new(),
    });
    r.config.devices = vec![vif.clone(), vif];
    let err = store.write(|tx| tx.put_record(&r)).map(drop).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");

    let good = record("odd");
    store.write(|tx| tx.put_record(&good)).unwrap();
    // Another build's dialect: text this one does not read.
    store
        .lock()
        .execute(
            "UPDATE domains SET config = '(vm (name odd) (future-only-field' WHERE uuid = ?1",
            [good.uuid.to_string()],
        )
        .unwrap();
    let mut back = store.read(|tx| tx.record(good.uuid)).unwrap().unwrap();
    assert!(back.unreadable_config.is_some() && back.note.is_some());
    back.state = Some("paused".into());
    store.write(|tx| tx.put_record(&back)).unwrap();
    let text: String = store
        .lock()
        .query_row(
            "SELECT config FROM domains WHERE uuid = ?1",
            [good.uuid.to_string()],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(text, "(vm (name odd) (future-only-field", "kept as stored");
}
