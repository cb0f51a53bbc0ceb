//! domus configs as libvirt domain XML, checked against libvirt's own
//! schema with `virt-xml-validate` (libvirt-clients, installed by
//! scripts/test): every valid fixture libvirt can express, its devices
//! included; plan9 and pygrub are refused with the reason.

use std::path::Path;
use std::process::Command;

use domus::backend::CreateSpec;
use domus::backend::libvirt::xml;
use domus::config::{DomainConfig, Policy};
use domus::engine::handlers::Registry;

fn validate(text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("domain.xml");
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let out = Command::new("virt-xml-validate")
        .arg(&file)
        .arg("domain")
        .output()
        .unwrap_or_else(|e| {
            panic!("virt-xml-validate could not run ({e}); scripts/test installs libvirt-clients")
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The config's domain XML with its devices, as create and the attaches
/// after it would give libvirt.
fn whole(c: &DomainConfig) -> Result<String, xml::XmlError> {
    let reg = Registry::default();
    let handler = reg
        .image(c.image.type_name())
        .unwrap_or_else(|| panic!("no image handler for {}", c.image.type_name()));
    let image = handler.configure(c).map_err(xml::XmlError::Unsupported)?;
    let spec = CreateSpec {
        name: c.name.clone(),
        uuid: c.uuid,
        memory_kib: c.memory * 1024,
        vcpus: c.vcpus,
        vcpus_online: None,
        image: Some(image.clone()),
        min_domid: 0,
    };
    let policies = (
        c.on_poweroff.unwrap_or(Policy::Destroy),
        c.on_reboot.unwrap_or(Policy::Restart),
        c.on_crash.unwrap_or(Policy::Restart),
    );
    let mut text = xml::domain(&spec, &image, "qemu", policies)?;
    let mut devices = String::new();
    for d in &c.devices {
        devices.push_str(&xml::device(d)?);
    }
    text = text.replace("  </devices>", &format!("{devices}  </devices>"));
    Ok(text)
}

#[test]
fn fixtures_become_domain_xml_that_libvirt_accepts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/valid");
    let mut checked = 0;
    let mut refused = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sxp"))
        .collect();
    files.sort();
    for f in files {
        let (c, _) = domus::config::load_file(&f).unwrap_or_else(|e| panic!("{e}"));
        match whole(&c) {
            Ok(text) => {
                if let Err(why) = validate(&text) {
                    panic!("{}: libvirt's schema refuses\n{text}\n{why}", f.display());
                }
                checked += 1;
            }
            Err(e) => refused.push(format!("{}: {e}", f.display())),
        }
    }
    assert!(
        checked >= 8,
        "only {checked} fixtures checked; refused: {refused:#?}"
    );
    // What libvirt cannot express is refused with the reason.
    assert!(
        refused
            .iter()
            .any(|r| r.contains("plan9") && r.contains("not supported by the libvirt backend")),
        "{refused:#?}"
    );
}

#[test]
fn hostile_names_and_paths_stay_text() {
    let c = domus::config::parse_str(
        "(vm (name \"a<b&c\") (memory 64) (image (linux (kernel \"/k'</kernel><evil/>\") (args \"x=<y>\"))) (device (vbd (uname \"file:/x'y\\\".img\") (dev xvda) (mode r))))",
        "t",
    );
    let Ok((c, _)) = c else {
        // The config parser refused it first: nothing reaches libvirt.
        return;
    };
    let text = whole(&c).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains("<evil/>"), "{text}");
    validate(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
}
