//! Lambda's CPU for a memory size, on this machine: a cgroup v1 `cpu` controller quota.
//!
//! Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB. `run
//! --memory-mb M` holds the worker process to M / 1,769 of one CPU: a fresh cgroup per run under
//! [`CPU_ROOT`] with `cpu.cfs_period_us` = [`PERIOD_US`] and `cpu.cfs_quota_us` =
//! [`quota_us`]`(M)`, the worker's pid written to its `cgroup.procs` right after it is spawned.
//! [`CpuCgroup`]'s `Drop` moves anything left in it back to the root and removes it, on every
//! path out of a run (error or panic included).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where the cgroup v1 `cpu` controller is mounted.
pub const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
/// Lambda's memory size with exactly one vCPU.
pub const ONE_VCPU_MB: u32 = 1_769;
/// The CFS period the quota is a share of: 100 ms, the kernel's default.
pub const PERIOD_US: u64 = 100_000;
/// The memory sizes Lambda allows, in MB.
pub const LAMBDA_MEMORY_MB: std::ops::RangeInclusive<u32> = 128..=10_240;

/// `--memory-mb`: a whole number of MB in Lambda's range.
pub fn parse_memory_mb(text: &str) -> Result<u32, String> {
    let mb: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of MB"))?;
    if LAMBDA_MEMORY_MB.contains(&mb) {
        Ok(mb)
    } else {
        Err(format!(
            "{mb} MB is outside Lambda's {} to {} MB",
            LAMBDA_MEMORY_MB.start(),
            LAMBDA_MEMORY_MB.end()
        ))
    }
}

/// The CPU time, in µs per [`PERIOD_US`], that Lambda gives `memory_mb`: `PERIOD_US x M / 1,769`,
/// rounded to the nearest µs (above 1,769 MB, more than one CPU's worth per period).
pub fn quota_us(memory_mb: u32) -> u64 {
    let one_vcpu = u64::from(ONE_VCPU_MB);
    (PERIOD_US * u64::from(memory_mb) + one_vcpu / 2) / one_vcpu
}

/// The vCPUs Lambda gives `memory_mb`.
pub fn vcpus(memory_mb: u32) -> f64 {
    f64::from(memory_mb) / f64::from(ONE_VCPU_MB)
}

/// GB-seconds per million deliveries, as Lambda bills (wall-clock duration x memory, 1 GB =
/// 1,024 MB): `M / 1,024 x seconds x 1e6 / deliveries`; `None` without deliveries.
pub fn gb_seconds_per_million(memory_mb: u32, wall_s: f64, deliveries: u64) -> Option<f64> {
    (deliveries > 0).then(|| f64::from(memory_mb) / 1024.0 * wall_s * 1e6 / deliveries as f64)
}

/// What the run's cgroup was set to and what its quota did (`cpu.stat`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupReport {
    pub quota_us: u64,
    pub period_us: u64,
    /// Periods in which the cgroup ran, and those in which it used up its quota and waited.
    pub nr_periods: u64,
    pub nr_throttled: u64,
    /// Time the cgroup's tasks spent held back by the quota, in seconds.
    pub throttled_s: f64,
}

impl CgroupReport {
    /// Two workers' cgroups together (same quota).
    pub fn add(self, other: &CgroupReport) -> CgroupReport {
        CgroupReport {
            nr_periods: self.nr_periods + other.nr_periods,
            nr_throttled: self.nr_throttled + other.nr_throttled,
            throttled_s: self.throttled_s + other.throttled_s,
            ..self
        }
    }
}

/// `cpu.stat` of a cgroup v1 `cpu` controller: `nr_periods`, `nr_throttled`, `throttled_time`
/// (ns); other lines (`nr_bursts`, `burst_time`, ...) are ignored. `None` if one is missing.
pub fn parse_cpu_stat(text: &str) -> Option<(u64, u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<u64>().ok())?
        })
    };
    Some((
        field("nr_periods")?,
        field("nr_throttled")?,
        field("throttled_time")?,
    ))
}

/// One run's cgroup; removed when dropped.
#[derive(Debug)]
pub struct CpuCgroup {
    root: PathBuf,
    path: PathBuf,
    quota_us: u64,
}

/// Numbers this process's cgroups, so that no two of its runs share a name.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl CpuCgroup {
    /// A fresh cgroup under [`CPU_ROOT`] holding its tasks to `memory_mb`'s share of one CPU.
    /// Fails (rather than running unlimited) if the controller is not there or not writable.
    pub fn create(memory_mb: u32) -> Result<Self, String> {
        Self::create_in(Path::new(CPU_ROOT), memory_mb)
    }

    fn create_in(root: &Path, memory_mb: u32) -> Result<Self, String> {
        let hint =
            "--memory-mb needs the cgroup v1 `cpu` controller mounted there and writable (root)";
        if !root.join("cpu.cfs_quota_us").is_file() {
            return Err(format!(
                "{}: no cgroup v1 cpu controller ({hint})",
                root.display()
            ));
        }
        let name = format!(
            "fanout-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = root.join(name);
        std::fs::create_dir(&path)
            .map_err(|e| format!("creating the cgroup {}: {e} ({hint})", path.display()))?;
        // From here on, Drop removes it.
        let cgroup = Self {
            root: root.to_owned(),
            path,
            quota_us: quota_us(memory_mb),
        };
        cgroup.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
        cgroup.write("cpu.cfs_quota_us", &cgroup.quota_us.to_string())?;
        Ok(cgroup)
    }

    /// Moves the process `pid` (all its threads) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The quota and what it did so far.
    pub fn report(&self) -> Result<CgroupReport, String> {
        let file = self.path.join("cpu.stat");
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let (nr_periods, nr_throttled, throttled_ns) = parse_cpu_stat(&text)
            .ok_or_else(|| format!("{}: unexpected {text:?}", file.display()))?;
        Ok(CgroupReport {
            quota_us: self.quota_us,
            period_us: PERIOD_US,
            nr_periods,
            nr_throttled,
            throttled_s: throttled_ns as f64 / 1e9,
        })
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.path.join(file);
        std::fs::write(&path, value)
            .map_err(|e| format!("writing {value} to {}: {e}", path.display()))
    }
}

impl Drop for CpuCgroup {
    /// Moves whatever is still inside (a worker killed on an error path may not be gone yet) to
    /// the root cgroup, then removes the directory; a few tries over at most half a second.
    fn drop(&mut self) {
        let procs = self.path.join("cgroup.procs");
        let root_procs = self.root.join("cgroup.procs");
        for attempt in 0..10 {
            if let Ok(pids) = std::fs::read_to_string(&procs) {
                for pid in pids.split_whitespace() {
                    let _ = std::fs::write(&root_procs, pid);
                }
            }
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(e) if attempt == 9 => {
                    eprintln!(
                        "fanout-bench: could not remove {}: {e}",
                        self.path.display()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_memory_over_1769_of_a_period() {
        assert_eq!(quota_us(1_769), 100_000);
        assert_eq!(quota_us(512), 28_943); // 28,942.9
        assert_eq!(quota_us(1_024), 57_886); // 57,885.8
        assert_eq!(quota_us(128), 7_236); // 7,235.7
        assert_eq!(quota_us(3_538), 200_000); // two vCPUs
        assert_eq!(quota_us(10_240), 578_858); // 578,858.1
        assert!((vcpus(512) - 0.2894).abs() < 1e-4);
    }

    #[test]
    fn memory_sizes_are_lambdas() {
        assert_eq!(parse_memory_mb("512"), Ok(512));
        assert_eq!(parse_memory_mb("128"), Ok(128));
        assert_eq!(parse_memory_mb("10240"), Ok(10_240));
        assert!(parse_memory_mb("127").unwrap_err().contains("128 to 10240"));
        assert!(parse_memory_mb("10241").is_err());
        assert!(parse_memory_mb("1.5").unwrap_err().contains("whole number"));
        assert!(parse_memory_mb("-512").is_err());
    }

    #[test]
    fn gb_seconds_are_memory_times_wall_clock_per_million() {
        // 1,024 MB for 100 s delivering a million: 100 GB-s.
        assert_eq!(gb_seconds_per_million(1_024, 100.0, 1_000_000), Some(100.0));
        // 512 MB for 30 s delivering 120,000: 0.5 x 30 x 1e6 / 120,000 = 125.
        assert_eq!(gb_seconds_per_million(512, 30.0, 120_000), Some(125.0));
        assert_eq!(gb_seconds_per_million(512, 30.0, 0), None);
    }

    #[test]
    fn parses_cpu_stat() {
        let text = "nr_periods 120\nnr_throttled 97\nthrottled_time 5123456789\nnr_bursts 0\nburst_time 0\n";
        assert_eq!(parse_cpu_stat(text), Some((120, 97, 5_123_456_789)));
        assert_eq!(parse_cpu_stat("nr_periods 1\nnr_throttled 0\n"), None);
        assert_eq!(
            parse_cpu_stat("nr_periods x\nnr_throttled 0\nthrottled_time 0\n"),
            None
        );
    }

    #[test]
    fn a_missing_controller_is_an_error_not_unlimited() {
        let error = CpuCgroup::create_in(Path::new("/nonexistent/cgroup/cpu"), 512).unwrap_err();
        assert!(error.contains("no cgroup v1 cpu controller"), "{error}");
    }

    #[test]
    fn a_cgroup_holds_its_process_and_is_removed_when_dropped() {
        // The real controller. CI runs as root on machines that have it, so there a missing one
        // fails; elsewhere (not root) the test says why it did not run.
        let cgroup = match CpuCgroup::create(512) {
            Ok(cgroup) => cgroup,
            Err(e) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
                panic!("CI=true and the cpu controller is unusable: {e}")
            }
            Err(e) => return eprintln!("not run: {e}"),
        };
        let path = cgroup.path.clone();
        let read = |file: &str| std::fs::read_to_string(path.join(file)).unwrap();
        assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
        assert_eq!(read("cpu.cfs_quota_us").trim(), "28943");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        cgroup.add(child.id()).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let membership = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        assert!(
            membership
                .lines()
                .any(|l| l.ends_with(&format!(":cpu:/{name}"))),
            "{membership}"
        );
        assert_eq!(cgroup.report().unwrap().quota_us, 28_943);
        // Dropped with the process still inside (as on an error path): moved out, then removed.
        drop(cgroup);
        assert!(!path.exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
