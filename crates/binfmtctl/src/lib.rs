//! binfmtctl's parts, one module per command or concern; `main.rs` is the
//! command line. A library so that the tests and the benchmark use the
//! same code (the ELF programs of `elf`, the strace reader).

pub mod arches;
pub mod bench;
pub mod binfmt_misc;
pub mod check;
pub mod cli;
pub mod elf;
pub mod embed;
pub mod explain;
pub mod files;
pub mod json;
pub mod locations;
pub mod man;
pub mod private;
pub mod register;
pub mod strace;
