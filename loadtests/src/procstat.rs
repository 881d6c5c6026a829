//! CPU time and memory of processes from /proc: the server's (given by pid) and the load
//! generator's own, so figures can be given per server CPU-second.

use anyhow::{Context, bail};

/// Clock ticks per second of /proc/PID/stat times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// User plus system CPU seconds of a process (`"self"` for this one).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is not running"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("unexpected /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let (Some(user), Some(system)) = (fields.get(11), fields.get(12)) else {
        bail!("unexpected /proc/{pid}/stat");
    };
    Ok((user.parse::<f64>()? + system.parse::<f64>()?) / ticks_per_second())
}

/// A field of /proc/PID/status in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(pid: &str, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is not running"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .context("unexpected /proc status")?
        .parse()?;
    Ok(kb * 1024)
}

/// Resets a process's peak resident memory (VmHWM) to what it holds now, so a later reading
/// of the peak covers only what came after (Linux 4.0 and later; the process must be ours).
pub fn reset_peak_rss(pid: &str) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("cannot reset the peak memory of process {pid}"))
}

/// The processes of the server under test.
#[derive(Debug, Clone)]
pub struct Server {
    pub pids: Vec<u32>,
}

impl Server {
    /// Checks every pid names a running process.
    pub fn new(pids: Vec<u32>) -> anyhow::Result<Self> {
        for pid in &pids {
            cpu_seconds(&pid.to_string())?;
        }
        Ok(Server { pids })
    }

    /// CPU seconds used so far, all processes together.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
    }

    /// Resident bytes now, all processes together.
    pub fn rss(&self) -> anyhow::Result<u64> {
        self.pids
            .iter()
            .map(|p| status_bytes(&p.to_string(), "VmRSS"))
            .sum()
    }

    /// Resets every process's peak resident memory to what it holds now.
    pub fn reset_peak_rss(&self) -> anyhow::Result<()> {
        self.pids
            .iter()
            .try_for_each(|p| reset_peak_rss(&p.to_string()))
    }

    /// Peak resident bytes since each process started, summed.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        self.pids
            .iter()
            .map(|p| status_bytes(&p.to_string(), "VmHWM"))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // Spin until the kernel has charged a tick of CPU time.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_seconds("self").unwrap() == 0.0 && start.elapsed().as_secs() < 5 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        assert!(cpu_seconds("self").unwrap() > 0.0);
        let me = Server::new(vec![std::process::id()]).unwrap();
        let rss = me.rss().unwrap();
        assert!(rss > 1 << 20, "{rss}");
        // Memory held for a moment raises the peak to at least that much.
        let held = vec![1u8; 64 << 20];
        std::hint::black_box(&held);
        let peak = me.peak_rss().unwrap();
        assert!(peak > 64 << 20, "{peak}");
        // Once reset, the peak is what is resident now.
        drop(held);
        me.reset_peak_rss().unwrap();
        assert!(me.peak_rss().unwrap() < peak, "the peak was not reset");
        assert!(Server::new(vec![u32::MAX]).is_err());
    }
}
