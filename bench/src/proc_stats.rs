//! What this process used, from `/proc` (Linux), and what the machine is.

use serde::{Deserialize, Serialize};

/// `VmHWM`: the peak resident set size, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// `VmRSS`: the resident set size now, in KiB.
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// User and system CPU time of the whole process, in seconds (see [`cpu_seconds`]).
pub fn cpu_user_system_seconds() -> Option<(f64, f64)> {
    let (utime, stime) = cpu_ticks()?;
    Some((utime as f64 / 100.0, stime as f64 / 100.0))
}

/// TCP sockets in TIME_WAIT on this machine (IPv4 and IPv6). Each run's worker leaves its
/// connections in TIME_WAIT for a minute when it exits; thousands of them make the next run's
/// `connect()` calls search the ephemeral port range, which costs CPU.
pub fn time_wait_sockets() -> usize {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| line.split_whitespace().nth(3) == Some("06"))
                .count()
        })
        .sum()
}

/// User plus system CPU time of the whole process (every thread, live or exited), in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let (utime, stime) = cpu_ticks()?;
    Some((utime + stime) as f64 / 100.0)
}

/// User and system CPU time of the whole process (every thread, live or exited): fields 14 and
/// 15 of `/proc/self/stat`, in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 in the kernel's
/// ABI on every architecture Linux runs Lambda on).
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it start past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field n is at index n - 3.
    let utime = fields.get(11)?.parse().ok()?;
    let stime = fields.get(12)?.parse().ok()?;
    Some((utime, stime))
}

/// CPU seconds the whole machine spent busy since boot (every CPU; `/proc/stat`'s first line:
/// user, nice, system, irq, softirq and steal, in 1/100 s).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .map(|t| t.parse().unwrap_or(0))
        .collect();
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum::<u64>();
    Some(busy as f64 / 100.0)
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub nproc: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub os: String,
    pub load_average_at_start: Option<f64>,
}

impl Machine {
    pub fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned());
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("PRETTY_NAME="))
                    .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu_model,
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib,
            kernel,
            os,
            load_average_at_start: load_average(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(peak_rss_kib().unwrap() >= rss_kib().unwrap() / 2);
        assert!(cpu_seconds().unwrap() >= 0.0);
        assert!(Machine::describe().nproc >= 1);
    }
}
