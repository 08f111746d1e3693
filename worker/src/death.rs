//! How a container that stopped answering died, read from what Docker says of it: out of
//! memory, crashed, or gone before the call reached it (the call can go to another container).
//! Pure logic; the `sandbox` module asks Docker for the [`DeathRecord`].

use common::ErrorInfo;
use std::time::SystemTime;

/// What Docker says of a container that stopped answering.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeathRecord {
    pub oom_killed: bool,
    pub exit_code: Option<i64>,
    /// When Docker saw it stop; `None` when it could not say.
    pub finished_at: Option<SystemTime>,
}

/// Why a container stopped answering during (or just before) a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Death {
    /// It was gone before the call was sent (killed from outside while idle): the call never
    /// ran and can go to another container.
    BeforeTheCall,
    OutOfMemory(ErrorInfo),
    Crashed(ErrorInfo),
}

impl Death {
    /// Reads a death. `call_sent` is when the request the container failed to answer was
    /// written; `stderr` is what the bootstrap itself last wrote there.
    ///
    /// Docker does not always set OOMKilled: on cgroup v2 its OOM event can race the exit, and
    /// gVisor's kernel may kill a process over the limit itself before the host's cgroup does.
    /// A container's first process cannot be SIGKILLed from inside its own namespace (runc),
    /// and the worker never kills a container it diagnoses, so a silent exit 137 *during the
    /// call* is taken for an OOM kill. Misreported: an operator's `docker kill` in the middle of
    /// a call, and a gVisor function that SIGKILLs itself. A death before the call was sent is
    /// never the caller's.
    pub fn explain(
        record: &DeathRecord,
        call_sent: SystemTime,
        stderr: &str,
        memory_mb: u32,
    ) -> Death {
        if record.finished_at.is_some_and(|at| at < call_sent) {
            return Death::BeforeTheCall;
        }
        let silent_kill = record.exit_code == Some(137) && stderr.trim().is_empty();
        if record.oom_killed || silent_kill {
            return Death::OutOfMemory(ErrorInfo::new(
                "Runtime.OutOfMemory",
                format!("the function used more than its {memory_mb} MB of memory and was killed"),
            ));
        }
        let mut message = match record.exit_code {
            Some(code) => format!("the function's process exited with code {code}"),
            None => "the function's container stopped answering".to_owned(),
        };
        if !stderr.trim().is_empty() {
            message.push_str(": ");
            message.push_str(stderr.trim());
        }
        Death::Crashed(ErrorInfo::new("Runtime.ExitError", message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_death_before_the_call_is_never_the_callers() {
        let sent = SystemTime::now();
        let killed_idle = DeathRecord {
            oom_killed: false,
            exit_code: Some(137),
            finished_at: Some(sent - Duration::from_millis(5)),
        };
        assert_eq!(
            Death::explain(&killed_idle, sent, "", 128),
            Death::BeforeTheCall
        );
        // Even one Docker marks OOM-killed: it died of some earlier call, not this one.
        let oom_idle = DeathRecord {
            oom_killed: true,
            ..killed_idle.clone()
        };
        assert_eq!(
            Death::explain(&oom_idle, sent, "", 128),
            Death::BeforeTheCall
        );
    }

    #[test]
    fn a_silent_kill_during_the_call_is_out_of_memory_and_an_exit_with_words_a_crash() {
        let sent = SystemTime::now();
        let during = |exit_code, oom_killed| DeathRecord {
            oom_killed,
            exit_code: Some(exit_code),
            finished_at: Some(sent + Duration::from_millis(30)),
        };
        assert!(matches!(
            Death::explain(&during(137, false), sent, "", 128),
            Death::OutOfMemory(e) if e.message.contains("128 MB")
        ));
        assert!(matches!(
            Death::explain(&during(1, true), sent, "boom", 128),
            Death::OutOfMemory(_)
        ));
        assert!(matches!(
            Death::explain(&during(137, false), sent, "faas bootstrap: bad\n", 128),
            Death::Crashed(e) if e.message.ends_with("code 137: faas bootstrap: bad")
        ));
        assert!(matches!(
            Death::explain(&DeathRecord::default(), sent, "", 128),
            Death::Crashed(e) if e.message.contains("stopped answering")
        ));
    }
}
