//! Envoy's resident memory, read from /proc. The soak starts Envoy through the
//! testkit launcher, which keeps the child to itself, so Envoy is found as
//! this process's child named `envoy`.

use std::fs;

/// The pid of this process's child whose command name is `envoy`.
pub fn envoy_child_pid() -> Option<u32> {
    let me = std::process::id();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last ')'.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == me && comm.starts_with("envoy")).then_some(pid)
    })
}

/// `VmRSS` of `pid` in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
