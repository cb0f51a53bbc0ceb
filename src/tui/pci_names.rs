//! Vendor and device names for the PCI picker, from the pci.ids database
//! Debian ships (`pci.ids` package: /usr/share/misc/pci.ids; `hwdata`:
//! /usr/share/hwdata/pci.ids). Read as text, line by line: vendors start
//! a line with four hex digits, their devices follow indented by a tab.

use std::path::Path;

/// Where Debian puts the database.
pub const PLACES: [&str; 2] = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

/// Larger than pci.ids (1.3 MB in 2024).
const MAX_BYTES: u64 = 16 << 20;

/// The database's text, from the first place that has it.
pub fn load() -> Option<String> {
    PLACES.iter().find_map(|p| read(Path::new(p)))
}

pub fn read(path: &Path) -> Option<String> {
    crate::fsx::read_bounded(path, MAX_BYTES)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The vendor's and the device's names for sysfs's `0x8086` / `0x1f2`.
pub fn lookup(db: &str, vendor: &str, device: &str) -> (Option<String>, Option<String>) {
    let hex = |s: &str| s.trim().trim_start_matches("0x").to_ascii_lowercase();
    let (vendor, device) = (hex(vendor), hex(device));
    let mut in_vendor = false;
    let mut vendor_name = None;
    for line in db.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('\t') {
            if !in_vendor || rest.starts_with('\t') {
                continue;
            }
            if let Some((id, name)) = rest.split_once("  ")
                && id.eq_ignore_ascii_case(&device)
            {
                return (vendor_name, Some(name.trim().to_string()));
            }
            continue;
        }
        if in_vendor {
            // The next vendor: the device is not listed.
            return (vendor_name, None);
        }
        if let Some((id, name)) = line.split_once("  ")
            && id.eq_ignore_ascii_case(&vendor)
        {
            in_vendor = true;
            vendor_name = Some(name.trim().to_string());
        }
    }
    (vendor_name, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DB: &str = "# pci.ids\n\
        1234  Other Vendor\n\
        \t1111  Thing\n\
        8086  Intel Corporation\n\
        \t0d57  Ethernet Controller E810-C\n\
        \t\t8086 0001  Subsystem\n\
        \t1f2  never matched (three digits)\n\
        \t2922  82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]\n\
        8087  Intel Corp.\n";

    #[test]
    fn names_vendor_and_device() {
        assert_eq!(
            lookup(DB, "0x8086", "0x2922"),
            (
                Some("Intel Corporation".into()),
                Some("82801IR/IO/IH (ICH9R/DO/DH) 6 port SATA Controller [AHCI mode]".into())
            )
        );
        assert_eq!(
            lookup(DB, "0x8086", "0xffff"),
            (Some("Intel Corporation".into()), None)
        );
        assert_eq!(lookup(DB, "0xabcd", "0x0001"), (None, None));
    }
}
