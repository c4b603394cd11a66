//! Preparing a runtime version before any session runs it: images resolved, code zips unpacked,
//! bytecode compiled once. The reconciler drives it through the `Provisioner` trait.

pub mod code;
pub mod precompile;
pub mod provisioner;
pub mod runtimes;
