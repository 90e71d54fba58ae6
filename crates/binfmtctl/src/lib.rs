//! binfmtctl's parts, one module per command or concern; `cli` defines the
//! command line and `main.rs` runs it. A library so that the tests and the
//! benchmark use the same code (the ELF programs of `elf`, the strace
//! reader, the man pages of `man`).

pub mod arches;
pub mod bench;
pub mod binfmt_misc;
pub mod bundle;
pub mod check;
pub mod cli;
pub mod elf;
pub mod embed;
pub mod explain;
pub mod files;
pub mod locations;
pub mod man;
pub mod private;
pub mod register;
pub mod strace;
