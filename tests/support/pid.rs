//! Process liveness for tests that check no child outlives what it should: included with
//! `#[path = "support/pid.rs"] mod pid;`.

/// Whether `pid` is a live process (zombies awaiting a reaper count as gone).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
