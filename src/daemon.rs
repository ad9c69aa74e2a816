//! The process's own life, around the mount: where the log goes (`logging`), the `-o`
//! options (`mount_options`), the confinement once mounted (`sandbox`) and the order of
//! unmounting (`unmount_order`).

pub mod logging;
pub mod mount_options;
pub mod sandbox;
pub mod unmount_order;
