//! Node metrics (CPU, memory, disk, network, uptime) through `sysinfo`; the network
//! counters from one read of `/proc/net/dev` (`procfs`): sysinfo reads ten sysfs files per
//! interface and asks netlink for addresses, 330 µs of the 440 µs a reading cost with four
//! interfaces (`cargo bench -p gpuwarden-agent --bench render`).

use sysinfo::{DiskRefreshKind, Disks, System};

use crate::text::{labels, Kind, Text};

const MAX_DISKS: usize = 64;
const MAX_NICS: usize = 64;

/// Keeps sysinfo's handles between collections (CPU usage needs two readings).
pub struct SystemCollector {
    system: Option<System>,
    disks: Option<Disks>,
    /// Constant while the node runs: read once.
    boot_time_seconds: Option<u64>,
    /// Readings taken.
    reads: u64,
}

impl std::fmt::Debug for SystemCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemCollector")
    }
}

/// A file system: mount point, type, size, available bytes.
pub type Filesystem = (String, String, u64, u64);
/// A network interface: name, received bytes, transmitted bytes, receive errors, transmit errors.
pub type Nic = (String, u64, u64, u64, u64);

/// One reading of the node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemStats {
    /// CPU busy, 0..1 (since the previous reading).
    pub cpu_usage: Option<f64>,
    /// Logical CPUs.
    pub cpus: usize,
    /// Load averages 1, 5, 15 min.
    pub load: Option<(f64, f64, f64)>,
    /// Memory total / available, bytes.
    pub memory: Option<(u64, u64)>,
    /// Seconds since boot.
    pub uptime_seconds: Option<u64>,
    /// Boot time, Unix seconds.
    pub boot_time_seconds: Option<u64>,
    /// (mount point, file system, size, available).
    pub filesystems: Vec<Filesystem>,
    /// (interface, received bytes, transmitted bytes, receive errors, transmit errors).
    pub networks: Vec<Nic>,
}

impl SystemCollector {
    /// Opens sysinfo's handles; a platform that lacks one simply yields fewer metrics.
    pub fn new() -> Self {
        SystemCollector {
            system: System::new().ok(),
            disks: Disks::new_with_refreshed_list_specifics(
                DiskRefreshKind::nothing().with_storage(),
            )
            .ok(),
            boot_time_seconds: System::boot_time().ok(),
            reads: 0,
        }
    }

    /// Reads the node now.
    pub fn collect(&mut self) -> SystemStats {
        self.reads += 1;
        let mut s = SystemStats::default();
        if let Some(sys) = self.system.as_mut() {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            s.cpus = sys.cpus().len();
            s.cpu_usage = Some(f64::from(sys.global_cpu_usage()) / 100.0);
            s.memory = Some((sys.total_memory(), sys.available_memory()));
        }
        s.load = System::load_average()
            .ok()
            .map(|l| (l.one, l.five, l.fifteen));
        s.uptime_seconds = System::uptime().ok();
        s.boot_time_seconds = self.boot_time_seconds;
        if let Some(d) = self.disks.as_mut() {
            // Sizes only: not the disk kind (sysfs) nor I/O counters (/proc/diskstats).
            d.refresh_specifics(true, DiskRefreshKind::nothing().with_storage());
            s.filesystems = d
                .iter()
                .take(MAX_DISKS)
                .map(|d| {
                    (
                        d.mount_point().to_string_lossy().into_owned(),
                        d.file_system().to_string_lossy().into_owned(),
                        d.total_space(),
                        d.available_space(),
                    )
                })
                .collect();
            s.filesystems.sort();
            s.filesystems.dedup_by(|a, b| a.0 == b.0);
        }
        if let Ok(devices) = procfs::net::dev_status() {
            s.networks = devices
                .into_values()
                .map(|d| (d.name, d.recv_bytes, d.sent_bytes, d.recv_errs, d.sent_errs))
                .collect();
            s.networks.sort();
            s.networks.truncate(MAX_NICS);
        }
        s
    }
}

impl SystemCollector {
    /// How many readings [`collect`](Self::collect) has taken.
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

impl Default for SystemCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes the node families.
pub fn render(t: &mut Text, s: &SystemStats) {
    if let Some(u) = s.cpu_usage {
        t.family(
            "gpuwarden_node_cpu_usage_ratio",
            "Share of CPU time busy across all CPUs since the previous collection.",
            Kind::Gauge,
        );
        t.sample("gpuwarden_node_cpu_usage_ratio", "", "", u);
        t.family("gpuwarden_node_cpus", "Logical CPUs.", Kind::Gauge);
        t.sample("gpuwarden_node_cpus", "", "", s.cpus as f64);
    }
    if let Some((one, five, fifteen)) = s.load {
        t.family(
            "gpuwarden_node_load_average",
            "Load average over `window` minutes.",
            Kind::Gauge,
        );
        t.sample("gpuwarden_node_load_average", "window=\"1m\"", "", one);
        t.sample("gpuwarden_node_load_average", "window=\"5m\"", "", five);
        t.sample("gpuwarden_node_load_average", "window=\"15m\"", "", fifteen);
    }
    if let Some((total, avail)) = s.memory {
        t.family(
            "gpuwarden_node_memory_total_bytes",
            "Physical memory.",
            Kind::Gauge,
        );
        t.sample("gpuwarden_node_memory_total_bytes", "", "", total as f64);
        t.family(
            "gpuwarden_node_memory_available_bytes",
            "Memory available for new work.",
            Kind::Gauge,
        );
        t.sample(
            "gpuwarden_node_memory_available_bytes",
            "",
            "",
            avail as f64,
        );
    }
    if let Some(u) = s.uptime_seconds {
        t.family(
            "gpuwarden_node_uptime_seconds",
            "Seconds since the node booted.",
            Kind::Gauge,
        );
        t.sample("gpuwarden_node_uptime_seconds", "", "", u as f64);
    }
    if let Some(b) = s.boot_time_seconds {
        t.family(
            "gpuwarden_node_boot_time_seconds",
            "Boot time, Unix seconds.",
            Kind::Gauge,
        );
        t.sample("gpuwarden_node_boot_time_seconds", "", "", b as f64);
    }
    let fs: Vec<(String, &Filesystem)> = s
        .filesystems
        .iter()
        .map(|f| (labels(&[("mountpoint", &f.0), ("fstype", &f.1)]), f))
        .collect();
    t.family(
        "gpuwarden_node_filesystem_size_bytes",
        "File system size.",
        Kind::Gauge,
    );
    for (l, f) in &fs {
        t.sample("gpuwarden_node_filesystem_size_bytes", l, "", f.2 as f64);
    }
    t.family(
        "gpuwarden_node_filesystem_avail_bytes",
        "File system space available.",
        Kind::Gauge,
    );
    for (l, f) in &fs {
        t.sample("gpuwarden_node_filesystem_avail_bytes", l, "", f.3 as f64);
    }
    let nics: Vec<(String, &Nic)> = s
        .networks
        .iter()
        .map(|n| (labels(&[("device", &n.0)]), n))
        .collect();
    type Pick = fn(&Nic) -> u64;
    let families: [(&'static str, &'static str, Pick); 4] = [
        (
            "gpuwarden_node_network_receive_bytes_total",
            "Bytes received.",
            |n| n.1,
        ),
        (
            "gpuwarden_node_network_transmit_bytes_total",
            "Bytes transmitted.",
            |n| n.2,
        ),
        (
            "gpuwarden_node_network_receive_errors_total",
            "Receive errors.",
            |n| n.3,
        ),
        (
            "gpuwarden_node_network_transmit_errors_total",
            "Transmit errors.",
            |n| n.4,
        ),
    ];
    for (name, help, pick) in families {
        t.family(name, help, Kind::Counter);
        for (l, n) in &nics {
            t.sample(name, l, "", pick(n) as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_memory_and_uptime() {
        let s = SystemCollector::new().collect();
        let (total, avail) = s.memory.expect("memory on Linux");
        assert!(total > 0 && avail <= total);
        assert!(s.uptime_seconds.is_some_and(|u| u > 0));
        let mut t = Text::default();
        render(&mut t, &s);
        let out = t.finish();
        assert!(out.contains("gpuwarden_node_memory_total_bytes "), "{out}");
    }
}
