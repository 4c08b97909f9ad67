//! What the process costs, from `/proc/self`: resident memory and CPU time.

/// Clock ticks per second of `/proc/self/stat`'s times (`USER_HZ`): 100 on every Linux
/// architecture this runs on (the kernel fixes it, whatever its internal `HZ`).
const USER_HZ: f64 = 100.0;

/// Resident memory now (`VmRSS`), MiB; 0 where `/proc` is unavailable.
pub(crate) fn rss_mb() -> f64 {
    status_kb("VmRSS:").map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// Peak resident memory of the process so far (`VmHWM`), MiB; 0 where unavailable.
pub(crate) fn peak_rss_mb() -> f64 {
    status_kb("VmHWM:").map_or(0.0, |kb| kb as f64 / 1024.0)
}

/// CPU time the process has used so far (user + system), seconds, in steps of 10 ms.
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / USER_HZ)
}

fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, field)
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name
/// (field 2) is in parentheses and may hold spaces, so fields are counted after the last
/// `)`, where field 3 is the first.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tmesh-sim\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(102_400));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(204_800));
        assert_eq!(parse_status_kb(status, "VmSwap:"), None);
        let stat = "4242 (mesh sim) S 1 2 3 4 5 6 7 8 9 10 250 75 0 0 20 0 9 0 100";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        // The peak is read after the current figure: other tests' threads allocate
        // meanwhile, and only a later peak is sure to be at least an earlier RSS.
        let rss = rss_mb();
        let peak = peak_rss_mb();
        assert!(rss > 0.0);
        assert!(peak >= rss, "peak {peak} < rss {rss}");
        assert!(cpu_seconds().is_some());
    }
}
