//! The device argument syntax shared by `domus attach` and the TUI's
//! command palette: `vbd UNAME DEV [MODE]`, `vif [mac=M] [bridge=B] [ip=A]`,
//! `pci BDF`.

use crate::config::{DeviceSpec, Mac, Pci, Vbd, VbdMode, Vif, parse_vdev};

pub const USAGE: &str =
    "vbd UNAME DEV [r|w] | vif [mac=MAC] [bridge=BRIDGE] [ip=ADDR] | pci [DDDD:]BB:DD.F";

pub fn parse_device_args(kind: &str, args: &[String]) -> Result<DeviceSpec, String> {
    match kind {
        "vbd" | "block" => {
            let [uname, dev, rest @ ..] = args else {
                return Err(
                    "vbd needs UNAME DEV [MODE], e.g. vbd file:/srv/data.img xvdb w".into(),
                );
            };
            let mode = match rest {
                [] => VbdMode::ReadWrite,
                [m] => m.parse()?,
                _ => {
                    return Err(format!(
                        "vbd takes at most three arguments, got {}",
                        args.len()
                    ));
                }
            };
            Ok(DeviceSpec::Vbd(Vbd {
                uname: uname.parse()?,
                dev: parse_vdev(dev)?,
                mode,
                cdrom: dev.ends_with(":cdrom"),
                extra: Vec::new(),
            }))
        }
        "vif" | "network" => {
            let mut vif = Vif {
                mac: None,
                bridge: None,
                ip: None,
                extra: Vec::new(),
            };
            for arg in args {
                let (k, v) = arg.split_once('=').ok_or_else(|| {
                    format!("vif arguments are KEY=VALUE (mac, bridge, ip), got '{arg}'")
                })?;
                match k {
                    "mac" => vif.mac = Some(v.parse::<Mac>()?),
                    "bridge" => vif.bridge = Some(v.to_string()),
                    "ip" => {
                        v.parse::<std::net::IpAddr>().map_err(|_| {
                            format!("invalid ip '{v}' (expected an IPv4 or IPv6 address)")
                        })?;
                        vif.ip = Some(v.to_string());
                    }
                    _ => {
                        return Err(format!(
                            "unknown vif key '{k}' (expected mac, bridge or ip)"
                        ));
                    }
                }
            }
            Ok(DeviceSpec::Vif(vif))
        }
        "pci" => match args {
            [bdf] => Ok(DeviceSpec::Pci(Pci::parse_bdf(bdf)?)),
            _ => Err("pci needs one PCI address, e.g. pci 0000:00:1f.2".into()),
        },
        other => Err(format!(
            "unknown device type '{other}' (expected vbd, vif or pci)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn forms() {
        assert!(matches!(
            parse_device_args("vbd", &s(&["file:/srv/x.img", "xvdb", "r"])),
            Ok(DeviceSpec::Vbd(Vbd {
                mode: VbdMode::ReadOnly,
                ..
            }))
        ));
        assert!(matches!(
            parse_device_args("vif", &s(&["bridge=br0"])),
            Ok(DeviceSpec::Vif(_))
        ));
        assert!(parse_device_args("vif", &s(&["bridge"])).is_err());
        assert!(parse_device_args("pci", &s(&["00:1f.2"])).is_ok());
        assert_eq!(
            parse_device_args("vbd", &s(&["file:/x", "xvdb", "rw"])).err(),
            Some("invalid mode 'rw' (expected r, w or w!)".into())
        );
    }
}
