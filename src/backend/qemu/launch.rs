//! How a domain becomes a QEMU process: its directory under the runtime
//! directory (0700; sockets 0600) and the argument vector — never a shell
//! string. Devices from the config are hot-plugged after start like later
//! attaches, so the command line carries only the machine, the boot image
//! and enough free PCIe root ports.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::backend::BootImage;
use crate::fsx;

/// Root ports created up front: one per hot-pluggable device.
pub const ROOT_PORTS: u32 = 8;

/// The files of one domain under the runtime directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainDir {
    pub dir: PathBuf,
}

impl DomainDir {
    pub fn new(runtime_dir: &Path, domid: u32) -> Self {
        DomainDir {
            dir: runtime_dir.join(domid.to_string()),
        }
    }

    /// Create the directory (and the runtime directory) with mode 0700.
    /// Either one being a symbolic link, someone else's or not a
    /// directory is refused: never followed, never re-moded.
    pub fn create(&self) -> std::io::Result<()> {
        if let Some(runtime) = self.dir.parent() {
            fsx::ensure_private_dir(runtime).map_err(|e| e.with_option("--runtime-dir"))?;
        }
        fsx::ensure_private_dir(&self.dir)?;
        Ok(())
    }

    pub fn qmp(&self) -> PathBuf {
        self.dir.join("qmp.sock")
    }

    /// The second QMP socket, held by the domain's supervisor for events.
    pub fn events(&self) -> PathBuf {
        self.dir.join("events.sock")
    }

    pub fn console(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }

    /// Make the sockets owner-only once QEMU has created them. Only a
    /// socket is touched: a link in their place is never followed (the
    /// directory is ours and 0700, so nothing can swap one in after the
    /// check).
    pub fn lock_down_sockets(&self) -> std::io::Result<()> {
        for s in [self.qmp(), self.events(), self.console()] {
            match std::fs::symlink_metadata(&s) {
                Ok(m) if m.file_type().is_socket() => {
                    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600))?;
                }
                _ => {}
            }
        }
        // QEMU writes its pidfile with the umask's mode.
        if std::fs::symlink_metadata(self.pidfile()).is_ok_and(|m| m.file_type().is_file()) {
            std::fs::set_permissions(self.pidfile(), std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }
}

/// What one QEMU process is started with.
#[derive(Debug, Clone)]
pub struct LaunchSpec<'a> {
    pub name: &'a str,
    pub uuid: uuid::Uuid,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// Started at boot when fewer than `vcpus` (the rest can be plugged).
    pub vcpus_online: Option<u32>,
    /// `kvm` or `tcg`.
    pub accel: &'a str,
    pub image: &'a BootImage,
    pub dir: &'a DomainDir,
    /// Wait for a migration stream (`-incoming defer`): a restore.
    pub incoming: bool,
    /// Where the serial console's log goes (the state dir's console
    /// archive, so it outlives the domain).
    pub console_log: &'a Path,
}

fn s(x: impl Into<String>) -> String {
    x.into()
}

/// The argument vector (without the program name).
pub fn args(spec: &LaunchSpec<'_>) -> Vec<String> {
    let d = spec.dir;
    // QEMU's option syntax doubles a comma inside a value.
    let path = |p: PathBuf| p.display().to_string().replace(',', ",,");
    let mut a = vec![
        s("-name"),
        format!("{},debug-threads=on", spec.name.replace(',', ",,")),
        s("-uuid"),
        spec.uuid.to_string(),
        s("-machine"),
        format!("q35,accel={}", spec.accel),
        s("-m"),
        spec.memory_mib.to_string(),
        s("-smp"),
        match spec.vcpus_online.filter(|n| *n >= 1 && *n < spec.vcpus) {
            Some(n) => format!("cpus={n},maxcpus={}", spec.vcpus),
            None => spec.vcpus.to_string(),
        },
        s("-nodefaults"),
        s("-no-user-config"),
        s("-display"),
        s("none"),
        // Created paused, as the engine's pipeline expects.
        s("-S"),
        s("-chardev"),
        format!(
            "socket,id=ser0,path={},server=on,wait=off,logfile={},logappend=on",
            path(d.console()),
            path(spec.console_log.to_path_buf())
        ),
        s("-serial"),
        s("chardev:ser0"),
        s("-qmp"),
        format!("unix:{},server=on,wait=off", path(d.qmp())),
        s("-qmp"),
        format!("unix:{},server=on,wait=off", path(d.events())),
        s("-device"),
        s("pvpanic"),
        s("-device"),
        s("virtio-balloon-pci,id=balloon0"),
        // Keep a crashed or powered-off domain inspectable; the engine decides.
        s("-action"),
        s("panic=pause"),
        s("-action"),
        s("reboot=shutdown"),
        s("-no-shutdown"),
        s("-daemonize"),
        s("-pidfile"),
        path(d.pidfile()),
    ];
    for i in 1..=ROOT_PORTS {
        a.push(s("-device"));
        a.push(format!("pcie-root-port,id=rp{i},chassis={i}"));
    }
    if spec.incoming {
        a.push(s("-incoming"));
        a.push(s("defer"));
    }
    let img = spec.image;
    if let Some(kernel) = &img.kernel {
        a.push(s("-kernel"));
        a.push(kernel.clone());
        if let Some(initrd) = &img.ramdisk {
            a.push(s("-initrd"));
            a.push(initrd.clone());
        }
        // The serial console is the domain's console.
        let cmdline = if img.cmdline.contains("console=") {
            img.cmdline.clone()
        } else {
            format!("{} console=ttyS0", img.cmdline).trim().to_string()
        };
        a.push(s("-append"));
        a.push(cmdline);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> BootImage {
        BootImage {
            ostype: "linux".into(),
            kernel: Some("/boot/vmlinux".into()),
            ramdisk: Some("/boot/initrd".into()),
            cmdline: "root=/dev/vda quiet".into(),
            memmap: None,
            device_model: None,
            vnc: false,
            boot_from_disk: false,
            ..Default::default()
        }
    }

    #[test]
    fn argument_vector() {
        let dir = DomainDir::new(Path::new("/run/domus"), 7);
        let img = image();
        let a = args(&LaunchSpec {
            name: "web,1",
            uuid: uuid::Uuid::nil(),
            memory_mib: 256,
            vcpus: 2,
            vcpus_online: None,
            accel: "tcg",
            image: &img,
            dir: &dir,
            incoming: false,
            console_log: Path::new("/state,x/consoles/u/7.log"),
        });
        let pair = |flag: &str| {
            a.iter()
                .position(|x| x == flag)
                .and_then(|i| a.get(i + 1))
                .cloned()
        };
        assert!(
            pair("-chardev").is_some_and(|c| c.contains("logfile=/state,,x/consoles/u/7.log,")),
            "commas in paths are doubled: {:?}",
            pair("-chardev")
        );
        assert_eq!(pair("-m").as_deref(), Some("256"));
        assert_eq!(pair("-smp").as_deref(), Some("2"));
        let online = args(&LaunchSpec {
            name: "v",
            uuid: uuid::Uuid::nil(),
            memory_mib: 256,
            vcpus: 4,
            vcpus_online: Some(2),
            accel: "tcg",
            image: &img,
            dir: &dir,
            incoming: false,
            console_log: Path::new("/l"),
        });
        let smp = online
            .iter()
            .position(|x| x == "-smp")
            .and_then(|i| online.get(i + 1));
        assert_eq!(
            smp.map(String::as_str),
            Some("cpus=2,maxcpus=4"),
            "xend's vcpu_avail: 2 of 4 vCPUs online at start"
        );
        assert_eq!(pair("-machine").as_deref(), Some("q35,accel=tcg"));
        assert_eq!(
            pair("-name").as_deref(),
            Some("web,,1,debug-threads=on"),
            "commas in names are escaped"
        );
        assert_eq!(
            pair("-append").as_deref(),
            Some("root=/dev/vda quiet console=ttyS0")
        );
        assert_eq!(pair("-pidfile").as_deref(), Some("/run/domus/7/qemu.pid"));
        assert!(a.contains(&"-S".to_string()), "created paused");
        assert_eq!(
            a.iter().filter(|x| x.starts_with("pcie-root-port")).count(),
            ROOT_PORTS as usize
        );
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn directory_modes() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = t.path().join("runtime");
        let d = DomainDir::new(&root, 3);
        crate::fsx::tests::with_umask_022(|| d.create()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&d.dir), 0o700);
    }

    #[test]
    fn a_symlinked_runtime_or_domain_dir_is_refused_and_left_alone() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let target = t.path().join("target");
        std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let link = t.path().join("runtime");
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = DomainDir::new(&link, 1)
            .create()
            .map(|()| "created")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("with --runtime-dir"), "{err}");
        assert_eq!(mode(&target), 0o755, "the link's target was re-moded");
        assert!(!target.join("1").exists());

        let runtime = t.path().join("real");
        std::fs::create_dir(&runtime).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(&target, runtime.join("2")).unwrap_or_else(|e| panic!("{e}"));
        let err = DomainDir::new(&runtime, 2)
            .create()
            .map(|()| "created")
            .unwrap_err();
        assert!(err.to_string().contains("is a symbolic link"), "{err}");
        assert_eq!(mode(&target), 0o755);
    }
}
