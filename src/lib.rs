//! binfmt-dispatcher: a binfmt_misc interpreter that picks the real
//! interpreter (FEX, box64, QEMU, ...) for each foreign binary at exec time.
//!
//! This library is the core shared by the trampoline (`binfmt-dispatcher`,
//! `no_std`, no libc) and the companion `binfmtctl`:
//!
//! - [`probe`]: facts from the first bytes of a binary;
//! - [`blob`]: the compiled configuration, read in place;
//! - [`decide`]: facts, path and blob in, interpreters to try out;
//! - [`launch`]: the argv and envp for the chosen interpreter;
//! - `config` (feature `std`): TOML layers into a blob.
//!
//! The trampoline includes these modules' sources directly (a `no_std`
//! binary cannot link a library built with `std`); the runtime that does its
//! syscalls lives in `src/rt` and holds all of the project's `unsafe`.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod blob;
#[cfg(feature = "std")]
pub mod config;
pub mod decide;
pub mod launch;
pub mod paths;
pub mod probe;
