//! Where the configuration and its compiled caches live (see
//! docs/configuration.md).

/// The system's compiled cache, written by `binfmtctl compile`.
pub const SYSTEM_CACHE: &core::ffi::CStr = c"/var/cache/binfmt-dispatcher/binfmt-dispatcher.cache";
/// The directory of [`SYSTEM_CACHE`].
pub const SYSTEM_CACHE_DIR: &core::ffi::CStr = c"/var/cache/binfmt-dispatcher";
/// The file name of [`SYSTEM_CACHE`] in [`SYSTEM_CACHE_DIR`].
pub const SYSTEM_CACHE_NAME: &core::ffi::CStr = c"binfmt-dispatcher.cache";
/// The user's compiled cache, below `$XDG_CACHE_HOME` (or `$HOME/.cache`).
pub const USER_CACHE: &str = "binfmt-dispatcher/binfmt-dispatcher.cache";
/// Vendor configuration fragments, read in lexical order.
pub const VENDOR_DIR: &str = "/usr/lib/binfmt-dispatcher.d";
/// The administrator's configuration.
pub const SYSTEM_CONFIG: &str = "/etc/binfmt-dispatcher.toml";
/// The user's configuration, below `$XDG_CONFIG_HOME` (or `$HOME/.config`).
pub const USER_CONFIG: &str = "binfmt-dispatcher/binfmt-dispatcher.toml";

/// Environment variable naming a compiled cache to use instead of the
/// user's and the system's (ignored in secure mode).
pub const ENV_CACHE: &str = "BINFMT_DISPATCHER_CACHE";
/// Environment variable naming an interpreter ID to use for one run
/// (ignored in secure mode).
pub const ENV_INTERPRETER: &str = "BINFMT_DISPATCHER_INTERPRETER";
/// Environment variable setting the log level (ignored in secure mode).
pub const ENV_LOG: &str = "BINFMT_DISPATCHER_LOG";
/// The original binfmt-dispatcher's name for [`ENV_LOG`].
pub const ENV_LOG_COMPAT: &str = "BINFMT_DISPATCHER_LOG_LEVEL";
