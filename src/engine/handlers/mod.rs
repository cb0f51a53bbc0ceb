//! Handler registries, as xend kept them: image handlers by image type,
//! device handlers by device type, config-field handlers by field name.
//! New guest types, devices or fields are added by registering a handler.

mod device;
mod field;
mod image;

pub use device::{DeviceHandler, PciHandler, VbdHandler, VifHandler};
pub use field::{FieldHandler, default_field_handlers};
pub use image::{HvmImageHandler, ImageHandler, LinuxImageHandler, Plan9ImageHandler, pgtable_kib};

use crate::config::DeviceSpec;

pub struct Registry {
    images: Vec<Box<dyn ImageHandler>>,
    devices: Vec<Box<dyn DeviceHandler>>,
    fields: Vec<FieldHandler>,
}

impl Default for Registry {
    fn default() -> Self {
        let mut r = Registry {
            images: Vec::new(),
            devices: Vec::new(),
            fields: default_field_handlers(),
        };
        r.add_image_handler(Box::new(LinuxImageHandler));
        r.add_image_handler(Box::new(Plan9ImageHandler));
        r.add_image_handler(Box::new(HvmImageHandler));
        r.add_device_handler(Box::new(VbdHandler));
        r.add_device_handler(Box::new(VifHandler));
        r.add_device_handler(Box::new(PciHandler));
        r
    }
}

impl Registry {
    pub fn add_image_handler(&mut self, h: Box<dyn ImageHandler>) {
        self.images.push(h);
    }

    pub fn add_device_handler(&mut self, h: Box<dyn DeviceHandler>) {
        self.devices.push(h);
    }

    pub fn add_field_handler(&mut self, h: FieldHandler) {
        self.fields.push(h);
    }

    /// The handler for an image type name (`vmx` is an alias of `hvm`).
    pub fn image(&self, type_name: &str) -> Option<&dyn ImageHandler> {
        self.images
            .iter()
            .find(|h| h.ostype() == type_name || h.aliases().contains(&type_name))
            .map(|h| h.as_ref())
    }

    pub fn device(&self, dev: &DeviceSpec) -> Option<&dyn DeviceHandler> {
        self.devices
            .iter()
            .find(|h| h.kind() == dev.type_name())
            .map(|h| h.as_ref())
    }

    pub fn fields(&self) -> &[FieldHandler] {
        &self.fields
    }
}
