//! The simulated guest: a boot log that reflects the domain's config, and a
//! tiny shell on its console.

use std::fmt::Write as _;
use std::io::Write as _;

use super::model::SimDomain;
use crate::backend::ShutdownReason;
use crate::config::{DeviceSpec, VbdMode, vdev_numbers};

pub const KERNEL_RELEASE: &str = "6.1.0-sim";
/// How long the simulated kernel takes from start to its shell prompt.
pub const BOOT_DURATION_NS: u64 = 250_000_000;

fn stamp(d: &SimDomain, now_ns: u64, extra_us: u64) -> String {
    let us = d.booted_ns.map_or(0, |b| now_ns.saturating_sub(b) / 1000) + extra_us;
    format!("[{:5}.{:06}] ", us / 1_000_000, us % 1_000_000)
}

fn prompt(d: &SimDomain) -> &'static str {
    match d.image.as_ref().map(|i| i.ostype.as_str()) {
        Some("plan9") => "term% ",
        _ => "/ # ",
    }
}

/// Size of a vbd in 1 KiB blocks: the image file's size when it exists on
/// this host, else a fixed 8 GiB (the simulator never reads the data).
fn vbd_blocks(dev: &crate::config::Vbd) -> u64 {
    std::fs::metadata(&dev.uname.path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(8 * 1024 * 1024, |m| m.len() / 1024)
}

fn probe_line(dev: &DeviceSpec, vif_index: usize) -> String {
    match dev {
        DeviceSpec::Vbd(v) if v.cdrom => format!(
            "blkfront: {}: CD-ROM, {}",
            v.dev,
            if v.uname.is_empty() {
                "no media".to_string()
            } else {
                format!("media {}", v.uname)
            }
        ),
        DeviceSpec::Vbd(v) => format!(
            "blkfront: {}: {} {} ({} KiB)",
            v.dev,
            v.uname,
            match v.mode {
                VbdMode::ReadOnly => "read-only",
                VbdMode::ReadWrite => "read-write",
                VbdMode::Shared => "read-write, shared",
            },
            vbd_blocks(v)
        ),
        DeviceSpec::Vif(v) => format!(
            "netfront: eth{vif_index}: mac {}{}",
            v.mac.map_or_else(|| "(none)".into(), |m| m.to_string()),
            v.bridge
                .as_deref()
                .map_or(String::new(), |b| format!(" on bridge {b}"))
        ),
        DeviceSpec::Pci(p) => format!("pcifront: probing {p}: passthrough device enabled"),
    }
}

/// The guest's first output after its first unpause.
pub fn boot_log(d: &SimDomain, _now_ns: u64) -> String {
    let mut s = String::new();
    // Boot messages are stamped from the kernel's start.
    let now_ns = d.booted_ns.unwrap_or(0);
    let image = d.image.clone().unwrap_or_default_image();
    let mut t = 0u64;
    let mut line = |s: &mut String, text: &str, step_us: u64| {
        t += step_us;
        let _ = write!(s, "{}{text}\r\n", stamp(d, now_ns, t));
    };
    if image.ostype == "hvm" {
        s.push_str("SeaBIOS (version domus-sim)\r\n");
        if image.boot_from_disk {
            // SeaBIOS tries the boot order (xend's `boot`); an empty CD
            // drive or the network falls through to the next.
            let cd_media = d
                .devices
                .iter()
                .any(|x| matches!(x, DeviceSpec::Vbd(v) if v.cdrom && !v.uname.is_empty()));
            for class in image.boot_order.as_deref().unwrap_or("c").chars() {
                match class {
                    'd' if cd_media => {
                        s.push_str("Booting from DVD/CD...\r\n");
                        break;
                    }
                    'd' => s.push_str(
                        "Booting from DVD/CD...\r\nBoot failed: Could not read from CDROM (code 0003)\r\n",
                    ),
                    'n' => s.push_str("Booting from ROM...\r\niPXE: no configuration methods succeeded\r\n"),
                    'c' => {
                        s.push_str("Booting from Hard Disk...\r\n");
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    if image.ostype == "plan9" {
        s.push_str("Plan 9 from Bell Labs (domus simulated guest)\r\n");
        let _ = write!(s, "cmdline: {}\r\n", image.cmdline);
        let _ = write!(
            s,
            "{} MiB memory, {} CPUs\r\n",
            d.memory_kib / 1024,
            d.vcpus
        );
    } else {
        line(
            &mut s,
            &format!("Linux version {KERNEL_RELEASE} (domus@sim) #1 SMP simulated guest"),
            0,
        );
        line(&mut s, &format!("Command line: {}", image.cmdline), 0);
        line(
            &mut s,
            &format!(
                "Memory: {}K/{}K available",
                d.memory_kib * 97 / 100,
                d.memory_kib
            ),
            1200,
        );
        line(
            &mut s,
            &format!(
                "smpboot: Allowing {} CPUs, {} hotplug CPUs",
                d.vcpus,
                d.vcpus - d.online_vcpus()
            ),
            3400,
        );
        if let Some(k) = &image.kernel {
            line(&mut s, &format!("Loaded kernel {k}"), 800);
        }
        if let Some(r) = &image.ramdisk {
            line(&mut s, &format!("Unpacking initramfs {r}"), 15_000);
        }
    }
    let mut vifs = 0;
    for dev in &d.devices {
        line(&mut s, &probe_line(dev, vifs), 21_000);
        if matches!(dev, DeviceSpec::Vif(_)) {
            vifs += 1;
        }
    }
    if image.ostype != "plan9" {
        line(&mut s, "Run /init as init process", 90_000);
    }
    let _ = write!(
        s,
        "\r\nWelcome to {} (domus simulated guest)\r\n\r\n{}",
        d.name,
        prompt(d)
    );
    s
}

trait OrDefaultImage {
    fn unwrap_or_default_image(self) -> crate::backend::BootImage;
}

impl OrDefaultImage for Option<crate::backend::BootImage> {
    fn unwrap_or_default_image(self) -> crate::backend::BootImage {
        self.unwrap_or(crate::backend::BootImage {
            ostype: "linux".into(),
            kernel: None,
            ramdisk: None,
            cmdline: String::new(),
            memmap: None,
            device_model: None,
            vnc: false,
            boot_from_disk: false,
            ..Default::default()
        })
    }
}

/// A kernel message for a device hot-plugged (or removed) while running.
pub fn hotplug_log(d: &SimDomain, dev: &DeviceSpec, attached: bool, now_ns: u64) -> String {
    let vif_index = d
        .devices
        .iter()
        .filter(|x| matches!(x, DeviceSpec::Vif(_)))
        .position(|x| x == dev)
        .unwrap_or(0);
    let text = if attached {
        probe_line(dev, vif_index)
    } else {
        format!("{}: device removed", short_name(dev, vif_index))
    };
    // Start on a fresh line: the shell prompt is usually showing.
    format!("\r\n{}{text}\r\n", stamp(d, now_ns, 0))
}

fn short_name(dev: &DeviceSpec, vif_index: usize) -> String {
    match dev {
        DeviceSpec::Vbd(v) => format!("blkfront: {}", v.dev),
        DeviceSpec::Vif(_) => format!("netfront: eth{vif_index}"),
        DeviceSpec::Pci(p) => format!("pcifront: {p}"),
    }
}

/// What the guest prints on its way down.
pub fn shutdown_log(d: &SimDomain, reason: ShutdownReason, now_ns: u64) -> String {
    let st = stamp(d, now_ns, 0);
    match reason {
        ShutdownReason::Poweroff => format!("{st}reboot: Power down\r\n"),
        ShutdownReason::Reboot => format!("{st}reboot: Restarting system\r\n"),
        ShutdownReason::Suspend => format!("{st}PM: suspending system for save\r\n"),
        ShutdownReason::Crash => format!(
            "{st}sysrq: Trigger a crash\r\n{st}Kernel panic - not syncing: sysrq triggered crash\r\n"
        ),
        ShutdownReason::Watchdog => format!("{st}watchdog: watchdog did not stop!\r\n"),
        ShutdownReason::SoftReset => format!("{st}kexec: soft reset\r\n"),
    }
}

/// Feed typed bytes to the guest shell. Output (echo included) goes to
/// `out`; a command that takes the guest down returns the reason.
pub fn type_input(
    d: &mut SimDomain,
    bytes: &[u8],
    now_ns: u64,
    out: &mut Vec<u8>,
) -> Option<ShutdownReason> {
    // Keys like the arrows arrive as escape sequences; this shell has no
    // line editing, so they are swallowed rather than echoed as "[A".
    let mut in_escape = false;
    for &b in bytes {
        if in_escape {
            in_escape = !(b.is_ascii_alphabetic() || b == b'~');
            continue;
        }
        if b == 0x1b {
            in_escape = true;
            continue;
        }
        match b {
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                let line = std::mem::take(&mut d.line);
                if let Some(reason) = run_command(d, line.trim(), now_ns, out) {
                    return Some(reason);
                }
                out.extend_from_slice(prompt(d).as_bytes());
            }
            0x7f | 0x08 if d.line.pop().is_some() => {
                out.extend_from_slice(b"\x08 \x08");
            }
            0x03 => {
                d.line.clear();
                out.extend_from_slice(b"^C\r\n");
                out.extend_from_slice(prompt(d).as_bytes());
            }
            b if (0x20..0x7f).contains(&b) => {
                d.line.push(b as char);
                out.push(b);
            }
            _ => {}
        }
    }
    None
}

fn partitions(d: &SimDomain, out: &mut Vec<u8>) {
    out.extend_from_slice(b"major minor  #blocks  name\r\n\r\n");
    for dev in &d.devices {
        if let DeviceSpec::Vbd(v) = dev {
            let (major, minor) = vdev_numbers(&v.dev);
            let _ = write!(
                out,
                "{major:4}  {minor:7} {:10} {}\r\n",
                vbd_blocks(v),
                v.dev
            );
        }
    }
}

fn vifs(d: &SimDomain) -> impl Iterator<Item = (usize, &crate::config::Vif)> {
    d.devices
        .iter()
        .filter_map(|x| match x {
            DeviceSpec::Vif(v) => Some(v),
            _ => None,
        })
        .enumerate()
}

fn ip_link(d: &SimDomain, out: &mut Vec<u8>) {
    out.extend_from_slice(
        b"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\r\n",
    );
    out.extend_from_slice(b"    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\r\n");
    for (i, v) in vifs(d) {
        let _ = write!(
            out,
            "{}: eth{i}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc pfifo_fast state UP\r\n    link/ether {} brd ff:ff:ff:ff:ff:ff\r\n",
            i + 2,
            v.mac
                .map_or_else(|| "00:00:00:00:00:00".into(), |m| m.to_string())
        );
    }
}

fn run_command(
    d: &mut SimDomain,
    line: &str,
    now_ns: u64,
    out: &mut Vec<u8>,
) -> Option<ShutdownReason> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let &cmd = words.first()?;
    let args = &words[1..];
    match (cmd, args) {
        ("echo", ["c", ">", "/proc/sysrq-trigger"]) | ("crash", _) => {
            out.extend_from_slice(shutdown_log(d, ShutdownReason::Crash, now_ns).as_bytes());
            return Some(ShutdownReason::Crash);
        }
        ("echo", _) => {
            out.extend_from_slice(args.join(" ").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ("poweroff", _) | ("halt", _) => {
            out.extend_from_slice(b"The system is going down NOW!\r\nSent SIGTERM to all processes\r\n");
            let mut msg = shutdown_log(d, ShutdownReason::Poweroff, now_ns);
            if cmd == "halt" {
                msg = msg.replace("Power down", "System halted");
            }
            out.extend_from_slice(msg.as_bytes());
            return Some(ShutdownReason::Poweroff);
        }
        ("reboot", _) => {
            out.extend_from_slice(b"The system is going down NOW!\r\nSent SIGTERM to all processes\r\n");
            out.extend_from_slice(shutdown_log(d, ShutdownReason::Reboot, now_ns).as_bytes());
            return Some(ShutdownReason::Reboot);
        }
        // The format is the rest of the line as typed, spaces and all.
        ("printf", _) => printf(line[cmd.len()..].trim_start(), out),
        ("uname", []) => out.extend_from_slice(b"Linux\r\n"),
        ("uname", ["-r"]) => {
            let _ = write!(out, "{KERNEL_RELEASE}\r\n");
        }
        ("uname", ["-a"]) => {
            let _ = write!(out, "Linux {} {KERNEL_RELEASE} #1 SMP simulated x86_64 GNU/Linux\r\n", d.name);
        }
        ("hostname", []) => {
            let _ = write!(out, "{}\r\n", d.name);
        }
        ("cat", ["/proc/partitions"]) => partitions(d, out),
        ("cat", ["/proc/meminfo"]) => {
            let _ = write!(out, "MemTotal:       {:8} kB\r\n", d.target_kib.min(d.memory_kib));
        }
        ("cat", ["/proc/cmdline"]) => {
            let cmdline = d.image.as_ref().map(|i| i.cmdline.clone()).unwrap_or_default();
            let _ = write!(out, "{cmdline}\r\n");
        }
        ("cat", [path]) => {
            let _ = write!(out, "cat: can't open '{path}': No such file or directory\r\n");
        }
        ("ip", ["link" | "l" | "a" | "addr", ..]) => ip_link(d, out),
        ("ls", ["/sys/class/net"]) => {
            let mut names = vec!["lo".to_string()];
            names.extend(vifs(d).map(|(i, _)| format!("eth{i}")));
            let _ = write!(out, "{}\r\n", names.join("  "));
        }
        ("lspci", []) => {
            for dev in &d.devices {
                if let DeviceSpec::Pci(p) = dev {
                    let _ = write!(out, "{:02x}:{:02x}.{:x} Passthrough device (host {p})\r\n", p.bus, p.dev, p.func);
                }
            }
        }
        ("uptime", []) => {
            let _ = write!(out, "up {:.0} seconds\r\n", d.uptime_secs(now_ns));
        }
        ("nproc", []) => {
            let _ = write!(out, "{}\r\n", d.online_vcpus());
        }
        ("help", _) => out.extend_from_slice(
            b"commands: echo, printf, uname [-a|-r], hostname, cat /proc/{partitions,meminfo,cmdline}, ip link,\r\n\
             ls /sys/class/net, lspci, uptime, nproc, poweroff, reboot, halt, crash\r\n",
        ),
        ("exit", _) => out.extend_from_slice(b"\r\nPlease press Enter to activate this console.\r\n"),
        _ => {
            let _ = write!(out, "sh: {cmd}: not found\r\n");
        }
    }
    None
}

/// A busybox-like `printf FORMAT` without arguments: the escapes `\\`,
/// `\n`, `\r`, `\t`, `\a`, `\b`, `\f`, `\v`, `\e`, `\NNN` (octal, one to
/// three digits) and `\xHH` (hex, one or two), and `%%`; anything else is
/// printed as written. This shell has no quoting, so the format is the rest
/// of the line, less one pair of surrounding quotes. It writes any byte,
/// which is how tests put a hostile guest on a console; LF goes out as CR LF,
/// as a guest's tty would send it.
fn printf(format: &str, out: &mut Vec<u8>) {
    let f = match format.as_bytes() {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
        f => f,
    };
    if f.is_empty() {
        out.extend_from_slice(b"printf: usage: printf FORMAT\r\n");
        return;
    }
    let mut emit = |b: u8| {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    };
    let mut i = 0;
    while i < f.len() {
        let c = f[i];
        i += 1;
        if c == b'%' && f.get(i) == Some(&b'%') {
            i += 1;
            emit(b'%');
            continue;
        }
        if c != b'\\' || i == f.len() {
            emit(c);
            continue;
        }
        let e = f[i];
        i += 1;
        match e {
            b'\\' => emit(b'\\'),
            b'n' => emit(b'\n'),
            b'r' => emit(b'\r'),
            b't' => emit(b'\t'),
            b'a' => emit(0x07),
            b'b' => emit(0x08),
            b'f' => emit(0x0c),
            b'v' => emit(0x0b),
            b'e' => emit(0x1b),
            b'0'..=b'7' => {
                i -= 1;
                let (v, _) = digits(f, &mut i, 8, 3);
                // `\777` wraps to a byte, as busybox's does.
                emit((v & 0xff) as u8);
            }
            b'x' => match digits(f, &mut i, 16, 2) {
                (_, 0) => {
                    emit(b'\\');
                    emit(b'x');
                }
                (v, _) => emit((v & 0xff) as u8),
            },
            _ => {
                emit(b'\\');
                emit(e);
            }
        }
    }
}

/// The value of up to `max` digits in `radix` at `f[*i..]`, and how many
/// there were; `*i` moves past them.
fn digits(f: &[u8], i: &mut usize, radix: u32, max: usize) -> (u32, usize) {
    let mut v = 0u32;
    let mut n = 0;
    while n < max
        && let Some(d) = f.get(*i).and_then(|&b| char::from(b).to_digit(radix))
    {
        v = v * radix + d;
        *i += 1;
        n += 1;
    }
    (v, n)
}

#[cfg(test)]
mod tests {
    use super::printf;

    fn run(format: &str) -> Vec<u8> {
        let mut out = Vec::new();
        printf(format, &mut out);
        out
    }

    #[test]
    fn printf_escapes() {
        assert_eq!(run(r"a\\b\tc"), b"a\\b\tc");
        assert_eq!(run(r"\e[31mred\033[0m\33x\0"), b"\x1b[31mred\x1b[0m\x1bx\0");
        assert_eq!(run(r"\x1b\x9b\xc2\x9bz\xq"), b"\x1b\x9b\xc2\x9bz\\xq");
        assert_eq!(run(r"\1234"), b"S4");
        assert_eq!(run(r"\777"), b"\xff");
        assert_eq!(run(r"one\ntwo\r\a\b\f\v"), b"one\r\ntwo\r\x07\x08\x0c\x0b");
        assert_eq!(run(r"100%% \q \"), b"100% \\q \\");
        assert_eq!(run(r"'two  words'"), b"two  words");
        assert_eq!(run(r#""x\ey""#), b"x\x1by");
        assert_eq!(run(""), b"printf: usage: printf FORMAT\r\n");
    }
}
