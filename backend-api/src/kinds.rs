//! Error codes added since 1.0. `abi.rs` stays as 1.0 shipped it, byte for byte; a code is
//! data, not layout, so new ones are added here (hosts read codes they do not know as FAILED).

use crate::abi::ErrorKind;

impl ErrorKind {
    /// The service manager did as asked, but the service did not reach the state (it failed,
    /// exited, or did not start in time); its logs say why. Since 1.1.
    pub const SERVICE_FAILED: Self = Self(8);
}
