//! xl.cfg(5), the format of every Xen operator's `/etc/xen/*.cfg` (and of
//! xm configs that are plain assignments): read into a domus config, with
//! every key that is not carried reported at file:line:col, and written
//! back (`domus export`, and the Xen backend's own configs).

mod disk;
mod export;
mod import;
pub mod syntax;

pub use disk::{format as disk_spec, parse as parse_disk};
pub use export::{Writer, nic_spec, pci_spec, quote, to_xl};

use super::{ConfigError, Diagnostics, DomainConfig};
use crate::sxp::Pos;

/// What kind of config a text is, judged by its first significant
/// character (after blank lines and `#` comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// xend's S-expressions: `(vm …)` or a `(domain …)` listing.
    Sxp,
    /// xl.cfg, or an xm config (Python, which the xl reader recognises).
    Xl,
    /// A libvirt domain or a Xen-API config.
    Xml,
    Json,
}

impl Dialect {
    pub fn describe(self) -> &'static str {
        match self {
            Dialect::Sxp => "xend S-expression",
            Dialect::Xl => "xl.cfg",
            Dialect::Xml => "XML (libvirt or Xen-API)",
            Dialect::Json => "JSON",
        }
    }
}

pub fn detect(text: &str) -> Dialect {
    let first = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .and_then(|l| l.chars().next());
    match first {
        Some('(') | None => Dialect::Sxp,
        Some('<') => Dialect::Xml,
        Some('{' | '[') => Dialect::Json,
        Some(_) => {
            // Stray text before an S-expression: a '(' before any '='.
            let code: String = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            match (code.find('('), code.find('=')) {
                (Some(p), Some(e)) if p < e => Dialect::Sxp,
                (Some(_), None) => Dialect::Sxp,
                _ => Dialect::Xl,
            }
        }
    }
}

/// Read xl.cfg text; `source` names it in messages.
pub fn parse_str(text: &str, source: &str) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    let mut d = Diagnostics::new(source);
    let file = match syntax::parse(text) {
        Ok(f) => f,
        Err(e) if e.python => {
            d.error(
                e.pos,
                format!(
                    "this is a Python program, not data ({}): xm ran its configs with Python; domus reads plain KEY = VALUE settings, so write the computed values out",
                    e.message
                ),
            );
            return Err(ConfigError::Invalid(d));
        }
        Err(e) => {
            d.error(e.pos, format!("{} (reading this as xl.cfg)", e.message));
            return Err(ConfigError::Invalid(d));
        }
    };
    let Some((config, dev_pos)) = import::convert(&file, &mut d) else {
        return Err(ConfigError::Invalid(d));
    };
    // The result must be a config domus itself accepts: written as sxp and
    // read back, every check of the sxp reader applies. Its complaints are
    // placed at the setting of this file they came from.
    let text = crate::sxp::print_pretty(&config.to_value());
    match super::parse_str(&text, source) {
        Ok((c, _)) => Ok((c, d)),
        Err(e) => {
            let fallback = file.get("name").map_or(Pos { line: 1, col: 1 }, |s| s.pos);
            let generated = crate::sxp::parse(&text).ok();
            match e.diagnostics() {
                Some(inner) => {
                    for x in &inner.errors {
                        let at = generated
                            .as_ref()
                            .and_then(|g| origin(g, x.pos, &file, &dev_pos))
                            .unwrap_or(fallback);
                        d.error(at, x.message.clone());
                    }
                }
                None => d.error(fallback, e.to_string()),
            }
            Err(ConfigError::Invalid(d))
        }
    }
}

/// Where in the xl.cfg the generated sxp's field at `pos` came from.
fn origin(
    generated: &crate::sxp::Node,
    pos: Pos,
    file: &syntax::XlFile,
    dev_pos: &[Pos],
) -> Option<Pos> {
    let fields = generated.children();
    let field = fields.iter().rev().find(|f| f.pos <= pos)?;
    let name = field.name()?;
    if name == "device" {
        let index = fields
            .iter()
            .filter(|f| f.name() == Some("device"))
            .position(|f| std::ptr::eq(f, field))?;
        return dev_pos.get(index).copied();
    }
    let keys: &[&str] = match name {
        "vcpu_avail" => &["vcpus"],
        "vcpus" => &["maxvcpus", "vcpus"],
        "image" => &["kernel", "type", "builder"],
        "cpu_cap" => &["cap"],
        "pool_name" => &["pool"],
        other => return file.get(other).map(|s| s.value.pos()),
    };
    keys.iter().find_map(|k| file.get(k)).map(|s| s.value.pos())
}

/// Read a config in any dialect domus knows; XML and JSON are named and
/// refused.
pub fn parse_any(text: &str, source: &str) -> Result<(DomainConfig, Diagnostics), ConfigError> {
    match detect(text) {
        Dialect::Sxp => super::parse_str(text, source),
        Dialect::Xl => parse_str(text, source),
        other => {
            let mut d = Diagnostics::new(source);
            d.error(
                Pos { line: 1, col: 1 },
                format!(
                    "this is {}, not a config domus reads (xend S-expressions or xl.cfg){}",
                    other.describe(),
                    if other == Dialect::Xml {
                        "; for a libvirt domain, `virsh domxml-to-native xen-xl` writes xl.cfg"
                    } else {
                        ""
                    }
                ),
            );
            Err(ConfigError::Invalid(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceSpec, Image, Policy};

    #[test]
    fn detects_dialects() {
        assert_eq!(detect("# c\n(vm (name a))"), Dialect::Sxp);
        assert_eq!(detect("\n# c\nname = 'a'"), Dialect::Xl);
        assert_eq!(detect("<domain type='kvm'>"), Dialect::Xml);
        assert_eq!(detect("{\"name\": 1}"), Dialect::Json);
        assert_eq!(detect("oops (vm (name a))"), Dialect::Sxp);
        assert_eq!(detect("oops\n(vm (name a))"), Dialect::Sxp);
        assert_eq!(detect("extra = '(hd0,0)/grub'"), Dialect::Xl);
    }

    #[test]
    fn an_xl_hvm_config_is_carried() {
        let text = "name = \"win\"\ntype = \"hvm\"\nmemory = 2048\nvcpus = 2\nmaxvcpus = 4\n\
            boot = \"dc\"\nkernel = \"/usr/lib/xen/boot/hvmloader\"\n\
            disk = [ '/dev/vg/win,raw,hda,rw', ',hdc:cdrom,r', 'format=qcow2,vdev=hdb,target=/srv/d.qcow2' ]\n\
            vif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0,model=e1000' ]\n\
            pci = [ '07:00.0', '07:00.1@8,msitranslate=1' ]\n\
            acpi = 1\nviridian = 1\non_crash = 'preserve'\nspice = 1\n";
        let (c, d) = parse_str(text, "win.cfg").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.vcpus, c.vcpus_online), (4, Some(2)));
        let Image::Hvm(h) = &c.image else {
            panic!("{:?}", c.image)
        };
        assert_eq!(h.boot_order(), "dc");
        assert_eq!(h.loader.as_deref(), Some("/usr/lib/xen/boot/hvmloader"));
        assert_eq!(c.devices.len(), 6);
        assert!(matches!(&c.devices[1], DeviceSpec::Vbd(v) if v.cdrom && v.uname.is_empty()));
        assert_eq!(c.on_crash, Some(Policy::Preserve));
        assert_eq!(c.on_poweroff, Some(Policy::Destroy));
        let w = d.warning_lines().join("\n");
        assert!(
            w.contains("win.cfg:14:1: warning: spice is not carried"),
            "{w}"
        );
        assert!(w.contains("xend settings kept as written"), "{w}");
        assert!(w.contains("pci 0000:07:00.1: its options"), "{w}");
    }

    #[test]
    fn python_and_foreign_formats_are_named() {
        let e = parse_any("name = \"VM%d\" % vmid\n", "x.cfg")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.starts_with("x.cfg:1:15: this is a Python program, not data"),
            "{e}"
        );
        let e = parse_any("<domain/>", "d.xml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("XML"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_position() {
        for (text, want) in [
            ("memory = 1", "no name"),
            (
                "name = 'a'\nmemory = 'lots'",
                "<i>:2:10: memory: expected a number",
            ),
            ("name = 'a'\ntype = 'pvh'", "<i>:2:8: type pvh"),
            (
                "name = 'a'\ndisk = ['/x.img,raw']",
                "<i>:2:9: disk \"/x.img,raw\": no vdev",
            ),
            ("name = '..'", "<i>:1:8: name:"),
            (
                "name = 'a'\non_crash = 'explode'",
                "<i>:2:12: on_crash \"explode\"",
            ),
            (
                "name = 'a'\nvcpus = 4\nmaxvcpus = 2",
                "<i>:3:12: maxvcpus 2 is below vcpus 4",
            ),
            ("name = 'a'\nmemory = 0", "<i>:2:10: memory must be"),
            (
                "name = 'a'\ncpu_weight = 0",
                "<i>:2:14: cpu_weight must be 1 to 65535",
            ),
            (
                "name = 'a'\ndisk = ['/a,raw,xvda', '/b,raw,xvda']",
                "<i>:2:24: vbd xvda file:/b (w) is given twice (first at 2:9)",
            ),
            (
                "name = 'a'\nvif = ['bridge=bad bridge']",
                "<i>:2:8: vif: invalid bridge",
            ),
            // A check only the sxp reader makes, placed at its setting.
            ("name = 'a'\nmemory = 64\nmaxmem = 32", "<i>:3:10: maxmem"),
            ("name = 'a'\nkernel = \"/k\\nx\"", "<i>:2:10: "),
        ] {
            let e = parse_str(text, "<i>")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn export_reads_back_the_same_config() {
        let text = "(vm (name web) (memory 512) (maxmem 1024) (vcpus 4) (vcpu_avail 3)
            (bootloader pygrub) (bootloader_args '-q --entry=1')
            (image (linux (kernel /boot/vmlinuz) (root /dev/xvda1) (args quiet)))
            (device (vbd (uname phy:/dev/vg/web) (dev xvda) (mode w)))
            (device (vbd (dev hdc:cdrom) (mode r)))
            (device (vbd (uname tap:qcow2:/srv/d.qcow2) (dev xvdb) (mode r)))
            (device (vif (mac 00:16:3e:00:00:02) (bridge br0) (script vif-bridge)))
            (device (pci (bus 7) (dev 0) (func 1)))
            (device (vfb (vnc 1) (vnclisten 0.0.0.0)))
            (on_crash preserve) (cpu_cap 50))";
        let (c, _) = crate::config::parse_str(text, "<i>").unwrap_or_else(|e| panic!("{e}"));
        let (xl, lost) = to_xl(&c);
        assert!(
            xl.contains("vif = [\"mac=00:16:3e:00:00:02,bridge=br0,script=vif-bridge\"]"),
            "{xl}"
        );
        assert!(xl.contains("cap = 50"), "{xl}");
        assert!(lost.is_empty(), "{lost:?}");
        let (back, _) = parse_str(&xl, "<xl>").unwrap_or_else(|e| panic!("{e}\n{xl}"));
        assert_eq!(back.devices, c.devices, "{xl}");
        assert_eq!((back.vcpus, back.vcpus_online), (4, Some(2)));
        assert_eq!(back.image.boot().cmdline(), c.image.boot().cmdline());
        assert_eq!(back.bootloader_args, c.bootloader_args);
        assert_eq!(back.on_crash, Some(Policy::Preserve));
        assert_eq!(back.other_devices.len(), 2, "the vfb and its keyboard");
    }
}
