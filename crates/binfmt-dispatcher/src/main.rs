//! The trampoline: registered in binfmt_misc as the interpreter of foreign
//! binaries, it reads the binary's header, decides which real interpreter
//! runs it and executes that interpreter with the argv the guest expects.
//!
//! `no_std`, no libc, statically linked: the exec path must cost about one
//! bare `execve`. The core is binfmt-dispatcher-core, the crate binfmtctl
//! runs too; `rt` does the syscalls.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

mod host;
mod rt;

use binfmt_dispatcher_core::driver;

#[inline(always)] // into the entry: one stack frame less on the exec path
fn main(process: &rt::Process) -> ! {
    let baked = rt::embedded_config(process);
    rt::exit(driver::run(
        &mut host::Syscalls::new(process),
        &process.facts,
        baked,
    ))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    rt::write_stderr(b"binfmt-dispatcher: internal error\n");
    rt::exit(126)
}
