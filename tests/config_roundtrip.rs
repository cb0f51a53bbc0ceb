//! Property: any typed config printed as sxp parses back to itself.

use domus::config::{
    BackendRole, DeviceSpec, DomainConfig, HvmFlavor, HvmImage, Image, KernelImage, Mac,
    OtherDevice, Pci, Policy, Uname, UnameKind, Vbd, VbdMode, Vfb, Vif, parse_str,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9/._:=-]{1,16}",
        "[ -~]{1,16}",
        "[a-z \"'\\\\\t\né→]{1,10}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// Text a path or a kernel argument may hold: no NUL or line break.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9/._:=-]{1,16}",
        "[ -~]{1,16}",
        "[a-z \"'\\\\\té→]{1,10}",
    ]
}

fn opt_line() -> impl Strategy<Value = Option<String>> {
    prop::option::of(line())
}

fn kernel_image(require_kernel: bool) -> impl Strategy<Value = KernelImage> {
    // A kernel named hvmloader is firmware in an HVM image.
    let kernel = if require_kernel {
        line().prop_map(Some).boxed()
    } else {
        opt_line()
            .prop_filter("not hvmloader", |k| {
                k.as_deref()
                    .is_none_or(|k| !k.rsplit('/').next().unwrap_or("").starts_with("hvmloader"))
            })
            .boxed()
    };
    (kernel, opt_line(), opt_line(), opt_line(), opt_line()).prop_map(
        |(kernel, ramdisk, root, ip, args)| KernelImage {
            kernel,
            ramdisk,
            root,
            ip,
            args,
            extra: Vec::new(),
        },
    )
}

fn image() -> impl Strategy<Value = Image> {
    prop_oneof![
        kernel_image(true).prop_map(Image::Linux),
        kernel_image(true).prop_map(Image::Plan9),
        (
            kernel_image(false),
            any::<bool>(),
            opt_line(),
            opt_line(),
            prop::option::of(any::<bool>()),
            opt_line(),
            prop::option::of("[cdn]{1,3}"),
        )
            .prop_map(
                |(boot, vmx, device_model, memmap, vnc, loader, boot_order)| {
                    Image::Hvm(HvmImage {
                        flavor: if vmx { HvmFlavor::Vmx } else { HvmFlavor::Hvm },
                        boot,
                        device_model,
                        memmap,
                        vnc,
                        loader,
                        boot_order,
                    })
                }
            ),
    ]
}

fn device(index: usize) -> impl Strategy<Value = DeviceSpec> {
    let letter = (b'a' + index as u8) as char;
    prop_oneof![
        ("[a-z0-9_-]{1,10}(/[a-z0-9_.-]{1,10}){0,2}", 0u8..5, 0u8..3,).prop_map(
            move |(path, kind, m)| {
                let path = format!("/{path}")
                    .replace("/..", "/x.")
                    .replace("/./", "/x/");
                let path = if path.ends_with("/.") {
                    format!("{path}x")
                } else {
                    path
                };
                let uname = match kind {
                    0 => Uname::new(UnameKind::Phy, path),
                    1 => Uname::new(UnameKind::File, path),
                    2 => format!("tap:qcow2:{path}")
                        .parse()
                        .unwrap_or_else(|e| panic!("{e}")),
                    3 => format!("tap2:tapdisk:aio:{path}")
                        .parse()
                        .unwrap_or_else(|e| panic!("{e}")),
                    _ => Uname::empty(),
                };
                let cdrom = uname.is_empty();
                let w = m > 0 && !cdrom;
                DeviceSpec::Vbd(Vbd {
                    uname,
                    dev: format!("xvd{letter}"),
                    cdrom,
                    mode: match (w, m) {
                        (false, _) => VbdMode::ReadOnly,
                        (true, 1) => VbdMode::ReadWrite,
                        _ => VbdMode::Shared,
                    },
                    extra: if w {
                        vec![format!("(backend {index})")]
                    } else {
                        Vec::new()
                    },
                })
            }
        ),
        (
            any::<bool>(),
            prop::option::of("[a-z][a-z0-9]{0,10}"),
            prop::option::of(any::<[u8; 4]>())
        )
            .prop_map(move |(mac, bridge, ip)| DeviceSpec::Vif(Vif {
                mac: mac.then_some(Mac([0, 0x16, 0x3e, 0, 0, index as u8])),
                bridge,
                ip: ip.map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
                extra: if mac {
                    vec!["(script vif-bridge)".to_string()]
                } else {
                    Vec::new()
                },
            })),
        (any::<u16>(), any::<u8>(), 0u8..32, 0u8..8).prop_map(move |(domain, bus, dev, func)| {
            // Unique per index: the parser rejects duplicate devices.
            DeviceSpec::Pci(Pci {
                domain,
                bus,
                dev: (dev & 0x1c) | (index as u8 & 3),
                func,
            })
        }),
    ]
}

fn devices() -> impl Strategy<Value = Vec<DeviceSpec>> {
    (0usize..5)
        .prop_flat_map(|n| (0..n).map(device).collect::<Vec<_>>())
        .prop_map(|mut v| {
            // Different indices can still produce the same PCI address: keep the first.
            let mut seen = Vec::new();
            v.retain(|d| match d {
                DeviceSpec::Pci(p) => {
                    let fresh = !seen.contains(p);
                    seen.push(*p);
                    fresh
                }
                _ => true,
            });
            v
        })
}

fn policy() -> impl Strategy<Value = Option<Policy>> {
    prop::option::of(prop::sample::select(Policy::ALL.to_vec()))
}

fn extra() -> impl Strategy<Value = Vec<lexpr::Value>> {
    prop::collection::vec(("[a-z]{1,8}", text()), 0..3).prop_map(|fields| {
        fields
            .into_iter()
            .enumerate()
            .map(|(i, (k, v))| {
                lexpr::Value::list(vec![
                    lexpr::Value::string(format!("x_{k}{i}")),
                    lexpr::Value::string(v),
                ])
            })
            .collect()
    })
}

prop_compose! {
    fn config()(
        name in "[a-z][a-z0-9._-]{0,20}",
        uuid in prop::option::of(any::<u128>()),
        memory in 1u64..65536,
        extra_max in prop::option::of(0u64..1024),
        vcpus in 1u32..=128,
        cpu in prop::option::of(0u32..64),
        cpu_weight in prop::option::of(1u32..=65535),
        image in image().boxed(),
        devices in devices().boxed(),
        on_poweroff in policy(),
        on_reboot in policy(),
        on_crash in policy(),
        bootloader in opt_text().boxed(),
        bootloader_args in opt_text().boxed(),
        online in prop::option::of(1u32..128),
        vfb in prop::option::of(("[0-9.]{1,15}", any::<bool>())),
        blkif in any::<bool>(),
        extra in extra().boxed(),
    ) -> DomainConfig {
        DomainConfig {
            name,
            uuid: uuid.map(uuid::Uuid::from_u128),
            memory,
            maxmem: extra_max.map(|m| memory + m),
            vcpus,
            vcpus_online: online.filter(|n| *n < vcpus),
            cpu,
            cpu_weight,
            image,
            devices: devices.clone(),
            on_poweroff,
            on_reboot,
            on_crash,
            // An empty value reads as no value, as xend read it.
            bootloader: bootloader.filter(|b| !b.is_empty()),
            bootloader_args: bootloader_args.filter(|b| !b.is_empty()),
            other_devices: vfb
                .map(|(listen, vkbd)| {
                    let mut v = vec![OtherDevice::Vfb(Vfb {
                        vnc: true,
                        sdl: false,
                        settings: vec![("vnclisten".into(), listen)],
                    })];
                    if vkbd {
                        v.push(OtherDevice::Vkbd);
                    }
                    v
                })
                .unwrap_or_default(),
            // A blkif backend domain may not have vbds of its own.
            backends: if blkif && !devices.iter().any(|d| matches!(d, DeviceSpec::Vbd(_))) {
                vec![BackendRole::Blkif]
            } else {
                vec![]
            },
            extra,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn typed_sxp_typed_is_identity(c in config()) {
        let text = c.to_sxp_string();
        let parsed = parse_str(&text, "generated");
        prop_assert!(parsed.is_ok(), "did not parse:\n{}\n{:?}", text, parsed.err().map(|e| e.to_string()));
        if let Ok((back, _)) = parsed {
            prop_assert_eq!(&back, &c, "text was:\n{}", text);
            prop_assert_eq!(back.to_sxp_string(), text);
        }
    }
}

/// What an xl.cfg carries of a config, in xl's terms: phy:, file: and a raw
/// tap are one raw target (xl tells a device from a file by looking), `w!`
/// is `rw`, plan9 is pv, the policies' defaults are written out.
fn carried(c: &DomainConfig) -> String {
    // xl lists disks, vifs and pci functions apart: order within a kind.
    let mut devices: Vec<String> = c
        .devices
        .iter()
        .map(|d| match d {
            DeviceSpec::Vbd(v) => format!(
                "vbd {} {:?} {} {} {}",
                v.dev,
                v.uname
                    .format()
                    .unwrap_or(if v.uname.is_empty() { "empty" } else { "raw" }),
                v.uname.path,
                v.mode.writable() && !v.cdrom,
                v.cdrom
            ),
            DeviceSpec::Vif(v) => format!("vif {:?} {:?} {:?}", v.mac, v.bridge, v.ip),
            DeviceSpec::Pci(p) => format!("pci {p}"),
        })
        .collect();
    devices.sort_by_key(|d| d.split(' ').next().map(str::to_string));
    let boot = c.image.boot();
    let (ty, order) = match &c.image {
        Image::Hvm(h) => ("hvm", h.boot_order().to_string()),
        _ => ("pv", String::new()),
    };
    format!(
        "{} {:?} mem {} {:?} vcpus {} {:?} w {:?} {ty} {order} k {:?} {:?} cmd {:?} bl {:?} {:?} on {} {} {}\n{}",
        c.name,
        c.uuid,
        c.memory,
        c.maxmem.filter(|m| *m != c.memory),
        c.vcpus,
        c.vcpus_online,
        c.cpu_weight,
        boot.kernel,
        boot.ramdisk,
        boot.cmdline(),
        c.bootloader,
        c.bootloader_args
            .as_deref()
            .map(|a| a.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|a| !a.is_empty()),
        c.poweroff_policy(),
        c.reboot_policy(),
        c.crash_policy(),
        devices.join("\n")
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `domus export` then `domus import`: the xl.cfg always reads, and
    /// what xl.cfg can say comes back the same.
    #[test]
    fn typed_xl_typed_keeps_what_xl_carries(c in config()) {
        let (text, _lost) = domus::config::xl::to_xl(&c);
        let back = domus::config::xl::parse_str(&text, "exported");
        prop_assert!(back.is_ok(), "did not import:\n{}\n{:?}", text, back.err().map(|e| e.to_string()));
        if let Ok((back, _)) = back {
            prop_assert_eq!(carried(&back), carried(&c), "xl.cfg was:\n{}", text);
        }
    }
}
