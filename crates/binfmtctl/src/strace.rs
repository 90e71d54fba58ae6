//! Reading `strace -f` logs: what a process did between two execs. Shared
//! by the integration tests and benches/exec_overhead.rs.

/// The syscalls (each line from the syscall's name on) that the first
/// process to `execve` a path whose quoted first argument satisfies
/// `first_arg` made after that exec, up to its next `execve` or
/// `execveat`, and the arguments of that one; `None` when the log has no
/// such pair.
pub fn calls_between_execs(
    log: &str,
    first_arg: impl Fn(&str) -> bool,
) -> Option<(Vec<String>, String)> {
    let mut pid = None;
    let mut calls = Vec::new();
    for line in log.lines() {
        // "PID name(args) = ret"; signals and exits start with ---/+++, a
        // resumed call with "<...".
        let (p, call) = line.split_once(' ').unwrap_or(("", line));
        let call = call.trim_start();
        if call.starts_with("---") || call.starts_with("+++") || call.starts_with("<...") {
            continue;
        }
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        match &pid {
            // Often "<unfinished ...>": the parent is in vfork until it returns.
            None if name == "execve" && args.split(',').next().is_some_and(&first_arg) => {
                pid = Some(p.to_string());
            }
            Some(q) if q == p => {
                if name == "execve" || name == "execveat" {
                    return Some((calls, args.to_string()));
                }
                calls.push(call.to_string());
            }
            _ => {}
        }
    }
    None
}
