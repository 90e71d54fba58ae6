//! binfmt-dispatcher's core: everything the exec path decides, shared by
//! the trampoline (`binfmt-dispatcher`, no libc) and `binfmtctl`:
//!
//! - [`probe`]: facts from the first bytes of a binary;
//! - [`blob`]: the compiled configuration, read in place;
//! - [`decide`]: facts, path and blob in, interpreters to try out;
//! - [`launch`]: the argv and envp for the chosen interpreter;
//! - [`bundle`]: interpreters bundled into a trampoline, and how one is
//!   loaded from its mapping;
//! - [`class`]: a Java class file's own name, for its class path root;
//! - [`paths`]: the files and variables the exec path knows by name;
//! - [`arches`]: the architecture table, data/binfmt-arches.tsv, compiled
//!   in by build.rs, which makes [`probe::ARCHES`] of it too;
//! - [`driver`]: the whole exec path, over a host that makes the syscalls
//!   (the trampoline) or records them (`binfmtctl explain`).
//!
//! `no_std` with no `std` feature, and no syscalls: what touches the
//! system is the host's.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod arches;
pub mod blob;
pub mod bundle;
pub mod class;
pub mod decide;
pub mod driver;
pub mod launch;
pub mod paths;
pub mod probe;
