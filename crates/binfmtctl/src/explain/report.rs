//! What the recorder saw, as `explain` prints it: text for a person, JSON
//! for a program.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use binfmt_dispatcher_config as config;
use binfmt_dispatcher_core::blob::{self, Blob};
use binfmt_dispatcher_core::decide::{Candidate, Failure, Plan, Reason};
use binfmt_dispatcher_core::driver::{ConfigSource, Event};
use binfmt_dispatcher_core::paths;
use serde_json::{json, Value};

use super::recorder::{Recorded, Seen};
use crate::locations::Source;

/// The decision: the interpreter chosen and why.
pub struct Decision {
    pub id: String,
    pub reason: Value,
    pub reason_text: String,
    /// `[defaults] missing_helper`.
    pub helper: String,
}

/// An interpreter of the chain executed.
pub struct Running {
    pub id: String,
    pub name: String,
    pub path: String,
    pub muvm: Option<String>,
}

/// An interpreter of the chain passed over.
pub struct Tried {
    pub id: String,
    pub path: String,
    pub muvm: Option<String>,
    pub kind: &'static str,
    pub why: String,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b.strip_suffix(b"\0").unwrap_or(b)).into_owned()
}

/// A string field of an interpreter, or `?`.
fn field_or_unknown(field: blob::Result<blob::Str<'_>>) -> String {
    field.map_or_else(|_| "?".to_string(), |s| lossy(s.as_bytes()))
}

/// The identifier of interpreter `index`, or `?`.
fn id_of(blob: &Blob<'_>, index: u32) -> String {
    field_or_unknown(blob.interpreter(index).and_then(|i| i.id()))
}

/// Records one step of the exec path.
pub fn note(seen: &mut Seen, event: Event<'_>) {
    match event {
        Event::Facts(facts) => seen.facts = Some(super::facts::describe(facts)),
        Event::Configuration(source, path) => seen.configurations.push((source, path.to_vec())),
        Event::Paths(paths) => seen.paths = paths.iter().map(|p| p.to_vec()).collect(),
        Event::Decided(blob, plan) => seen.decision = Some(decision(blob, plan)),
        Event::Running(candidate) => {
            seen.running = Some(Running {
                id: field_or_unknown(candidate.interpreter.id()),
                name: field_or_unknown(candidate.interpreter.name()),
                path: lossy(candidate.path),
                muvm: candidate.muvm.map(lossy),
            });
        }
        Event::Skipped(candidate, failure) => {
            seen.tried.push(tried(candidate, failure));
        }
    }
}

fn decision(blob: &Blob<'_>, plan: &Plan<'_>) -> Decision {
    let id = id_of(blob, plan.interpreter);
    let (reason, reason_text) = match plan.reason {
        Reason::Environment => (
            json!({"kind": "environment"}),
            format!("{}={id}", paths::ENV_INTERPRETER),
        ),
        Reason::Binary(p) => (
            json!({"kind": "binary", "path": lossy(p)}),
            format!("[binaries] entry for {}", lossy(p)),
        ),
        Reason::Rule(n) => {
            let conditions = config::describe_rule(blob, n).unwrap_or_else(|e| e.to_string());
            let text = format!("rule #{} ({conditions})", n + 1);
            let json = json!({"kind": "rule", "number": n + 1, "conditions": conditions});
            (json, text)
        }
        Reason::Default => (
            json!({"kind": "default"}),
            "[defaults] interpreter".to_string(),
        ),
    };
    let helper = blob
        .missing_helper()
        .map_or(String::new(), |h| lossy(h.as_bytes()));
    Decision {
        id,
        reason,
        reason_text,
        helper,
    }
}

fn tried(candidate: &Candidate<'_>, failure: Failure<'_>) -> Tried {
    let (kind, why) = match failure {
        Failure::Missing => (
            "missing",
            match candidate.muvm {
                Some(m) => format!("muvm ({}) not found", lossy(m)),
                None => "not found".to_string(),
            },
        ),
        Failure::RequiredPathMissing(p) => (
            "required_path_missing",
            format!("required path {} is missing", lossy(p)),
        ),
        Failure::NotExecutable(errno) => (
            "not_executable",
            format!(
                "cannot execute: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        ),
        Failure::NoSafeName => (
            "no_safe_name",
            "cannot be given the binary's name safely (its template needs \
             {binary_dir} or {binary_stem}, or muvm, and the binary is named by its descriptor)"
                .to_string(),
        ),
        Failure::Java(why) => ("java", lossy(why)),
    };
    Tried {
        id: field_or_unknown(candidate.interpreter.id()),
        path: lossy(candidate.path),
        muvm: candidate.muvm.map(lossy),
        kind,
        why,
    }
}

/// Everything explain shows besides what the recorder saw.
pub struct Report<'r> {
    pub binary: &'r [u8],
    pub seen: &'r Seen,
    pub status: i32,
    pub execfd: Option<u32>,
    pub page_size: usize,
    pub secure: bool,
    /// The trampoline whose configuration is the built-in one, when not
    /// binfmtctl's copy.
    pub embedded_in: Option<PathBuf>,
    pub env_before: Vec<Vec<u8>>,
}

impl Report<'_> {
    /// The exec that ran, if any: the last one recorded, when it would run.
    fn ran(&self) -> Option<&Recorded> {
        self.seen.execs.last().filter(|e| e.error.is_none())
    }

    /// The interpreter that ran, if any, and not the helper.
    fn ran_interpreter(&self) -> Option<&Recorded> {
        self.ran().filter(|_| self.status == 0)
    }

    /// The helper's exec, when the dispatcher makes one after its line:
    /// the last exec of a run that failed, unless it is an interpreter's.
    fn helper(&self) -> Option<&Recorded> {
        let last = self.seen.execs.last().filter(|_| self.status != 0)?;
        match &self.seen.decision {
            Some(d) => (lossy(&last.path) == d.helper).then_some(last),
            None => Some(last),
        }
    }

    /// Where the configuration in use came from.
    fn source(&self) -> Source {
        let Some((source, path)) = self.seen.configurations.last() else {
            return Source::BuiltIn;
        };
        let path = PathBuf::from(OsStr::from_bytes(path));
        match (source, &self.embedded_in) {
            (ConfigSource::Environment, _) => Source::Environment(path),
            (ConfigSource::User, _) => Source::User(path),
            (ConfigSource::System, _) => Source::System(path),
            (ConfigSource::BuiltIn, None) => Source::BuiltIn,
            (ConfigSource::BuiltIn, Some(dispatcher)) => Source::Embedded(dispatcher.clone()),
        }
    }
}

fn strings(v: &[Vec<u8>]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(lossy(s))).collect())
}

/// The JSON document.
pub fn json(r: &Report<'_>) -> String {
    let seen = r.seen;
    let tried: Vec<Value> = seen
        .tried
        .iter()
        .map(|t| {
            json!({"interpreter": t.id, "path": t.path, "muvm": t.muvm,
                   "failure": t.kind, "reason": t.why})
        })
        .collect();
    let decision = seen.decision.as_ref();
    let ran = r.ran_interpreter();
    let runs = ran
        .and(seen.running.as_ref())
        .map(|i| json!({"interpreter": i.id, "name": i.name, "path": i.path, "muvm": i.muvm}));
    let source = r.source();
    let path = source.path().map(|p| lossy(p.as_os_str().as_bytes()));
    let helper_exec = r.helper().filter(|e| e.error.is_none());
    let helper =
        decision.filter(|d| !d.helper.is_empty() && (r.status == 127 || helper_exec.is_some()));
    let doc = json!({
        "binary": lossy(r.binary),
        "header": seen.facts.as_ref().map(|f| &f.0),
        "paths": strings(&seen.paths),
        "cache": {"source": source.kind(), "path": path},
        "chosen": decision.map(|d| &d.id),
        "reason": decision.map(|d| &d.reason),
        "tried": tried,
        "runs": runs,
        "exec": ran.map(|e| lossy(&e.path)),
        "bundled": ran.map(|e| e.bundled),
        "argv": ran.map(|e| strings(&e.argv)),
        "env": ran.map(|e| strings(&e.envp)),
        "execfd": ran.filter(|e| e.keeps_fd).and(r.execfd),
        "page_size": r.page_size,
        "secure": r.secure,
        "status": r.status,
        "stderr": seen.stderr,
        "missing_helper": helper.map(|d| &d.helper),
        "helper_exec": helper_exec.map(|e| strings(&e.argv)),
        "helper_env": helper_exec.map(|e| strings(&e.envp)),
    });
    let mut out = serde_json::to_string_pretty(&doc).unwrap_or_default();
    out.push('\n');
    out
}

/// The text for a person.
pub fn text(r: &Report<'_>) -> String {
    let mut o = String::new();
    let seen = r.seen;
    let _ = writeln!(o, "binary: {}", lossy(r.binary));
    for line in seen.facts.iter().flat_map(|f| &f.1) {
        let _ = writeln!(o, "  {line}");
    }
    for p in &seen.paths {
        let _ = writeln!(o, "  matched as: {}", lossy(p));
    }
    let _ = writeln!(o, "configuration: {}", r.source().describe());
    if r.secure {
        let _ = writeln!(
            o,
            "  as a set-id exec (AT_SECURE): the environment is ignored"
        );
    }
    decision_text(&mut o, r);
    for line in &seen.stderr {
        let _ = writeln!(o, "stderr: {line}");
    }
    o
}

fn decision_text(o: &mut String, r: &Report<'_>) {
    let seen = r.seen;
    let Some(decision) = &seen.decision else {
        let _ = writeln!(o, "nothing would run: the dispatcher exits {}", r.status);
        helper_text(o, r);
        return;
    };
    let _ = writeln!(o, "decision: {}, by {}", decision.id, decision.reason_text);
    for t in &seen.tried {
        let _ = writeln!(o, "  skipped {} ({}): {}", t.id, t.path, t.why);
    }
    let Some(ran) = r.ran_interpreter() else {
        let _ = writeln!(
            o,
            "nothing would run: the dispatcher exits {} with one line on stderr",
            r.status
        );
        helper_text(o, r);
        return;
    };
    exec_text(o, r, ran);
}

/// The helper the dispatcher executes after its line, if it does: to
/// offer an install (127), or to show the failure in a dialog (stdin not a
/// terminal, a display).
fn helper_text(o: &mut String, r: &Report<'_>) {
    let Some(helper) = r.helper() else {
        return;
    };
    let _ = writeln!(
        o,
        "  then executes the helper {} BINARY ARGV0 ARGS... (never for set-id binaries), \
         which may install an interpreter and rerun, or show the failure in a dialog{}",
        lossy(&helper.path),
        if helper.error.is_some() {
            " (it is not there)"
        } else {
            ""
        }
    );
}

fn exec_text(o: &mut String, r: &Report<'_>, ran: &Recorded) {
    if let Some(i) = &r.seen.running {
        let _ = writeln!(o, "runs: {} ({}) {}", i.id, i.name, i.path);
        if let Some(m) = &i.muvm {
            let _ = writeln!(o, "  under muvm {m}: the page size is {}", r.page_size);
        }
    }
    let _ = writeln!(o, "execve: {}", lossy(&ran.path));
    if ran.bundled {
        let _ = writeln!(
            o,
            "  (missing from the root: the copy bundled into the dispatcher runs)"
        );
    }
    for (i, a) in ran.argv.iter().enumerate() {
        let _ = writeln!(o, "  argv[{i}] = {:?}", lossy(a));
    }
    // The environment: the caller's, with what the interpreter's
    // convention and configuration set or drop.
    let key = |e: &[u8]| e.split(|&b| b == b'=').next().unwrap_or(e).to_vec();
    let mut changes = Vec::new();
    for e in &ran.envp {
        if !r.env_before.contains(e) {
            let replaced = r.env_before.iter().any(|b| key(b) == key(e));
            let what = if replaced { "replaced:" } else { "added:   " };
            changes.push(format!("  {what} {}", lossy(e)));
        }
    }
    for e in &r.env_before {
        if !ran.envp.iter().any(|k| key(k) == key(e)) {
            changes.push(format!("  dropped:  {}", lossy(&key(e))));
        }
    }
    let _ = writeln!(
        o,
        "environment: {} variables{}",
        ran.envp.len(),
        if changes.is_empty() {
            ", this one's"
        } else {
            ", this one's, and"
        }
    );
    for c in changes {
        let _ = writeln!(o, "{c}");
    }
    if let (true, Some(fd)) = (ran.keeps_fd, r.execfd) {
        let _ = writeln!(o, "descriptor {fd} (the binary) stays open");
    }
}
