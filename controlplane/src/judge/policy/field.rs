//! Which field of `gpu` or `node` a name is, found once when a policy loads, so that the
//! native rules (`fast`) read a field without matching its name again (`vals`).

/// Which of `gpu`'s fields a name is: found once (when a policy loads) for the native rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GpuField {
    Index,
    Uuid,
    Model,
    Up,
    EccCorrected,
    EccUncorrected,
    NvlinkErrors,
    NvlinkDown,
    EccCorrectedPerHour,
    NvlinkErrorsDelta,
    PcieReplaysDelta,
    /// A value the agent reports under this name (`temperature_celsius`, …), or a container
    /// (`xid_errors`, `clock_events`) when it reports no value of that name.
    Value,
}

impl GpuField {
    /// The kind of field `f`.
    pub(crate) fn of(f: &str) -> Self {
        match f {
            "index" => Self::Index,
            "uuid" => Self::Uuid,
            "model" => Self::Model,
            "up" => Self::Up,
            "ecc_corrected" => Self::EccCorrected,
            "ecc_uncorrected" => Self::EccUncorrected,
            "nvlink_errors" => Self::NvlinkErrors,
            "nvlink_down" => Self::NvlinkDown,
            "ecc_corrected_per_hour" => Self::EccCorrectedPerHour,
            "nvlink_errors_delta" => Self::NvlinkErrorsDelta,
            "pcie_replays_delta" => Self::PcieReplaysDelta,
            _ => Self::Value,
        }
    }

    /// Whether `f` may be a list or map (`xid_errors`, `clock_events`): not a scalar.
    pub(crate) fn may_be_container(f: &str) -> bool {
        matches!(f, "xid_errors" | "clock_events")
    }
}

/// Which of `node`'s fields a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeField {
    Name,
    Pool,
    Connectivity,
    ExpectedGpus,
    GpuCount,
    DriverVersion,
    /// `labels`, `health_checks` (maps) or no field.
    Other,
}

impl NodeField {
    /// The kind of field `f`.
    pub(crate) fn of(f: &str) -> Self {
        match f {
            "name" => Self::Name,
            "pool" => Self::Pool,
            "connectivity" => Self::Connectivity,
            "expected_gpus" => Self::ExpectedGpus,
            "gpu_count" => Self::GpuCount,
            "driver_version" => Self::DriverVersion,
            _ => Self::Other,
        }
    }
}
