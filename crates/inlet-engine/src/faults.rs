//! Test-only crash points: `--fault-point NAME` (a hidden flag) makes the process kill
//! itself with SIGKILL when the batch protocol (or table maintenance) reaches that step.

/// The step boundaries of the batch protocol where a crash is simulated (each is "after" a
/// step: the names say which).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Batch planned in the checkpoint, nothing written.
    AfterPlan,
    /// Data files written under the table, not committed.
    AfterWrite,
    /// Delta commit done, checkpoint not yet told.
    AfterCommit,
    /// Checkpoint recorded the commit (before acknowledgement).
    AfterRecord,
    /// Compaction planned, nothing written.
    CompactStart,
    /// Compaction files written and committed, post-commit work not done.
    CompactCommitted,
    /// VACUUM's start commit landed, no file deleted.
    VacuumStarted,
    /// VACUUM deleted its files and committed its end.
    VacuumDone,
    /// A merge-on-read MERGE wrote its new rows, no deletion vector yet.
    DvRowsWritten,
    /// A merge-on-read MERGE wrote its deletion vectors, not committed.
    DvVectorsWritten,
}

impl FaultPoint {
    /// Every point with its command-line name.
    pub const ALL: [(&'static str, FaultPoint); 10] = [
        ("after-plan", Self::AfterPlan),
        ("after-write", Self::AfterWrite),
        ("after-commit", Self::AfterCommit),
        ("after-record", Self::AfterRecord),
        ("compact-start", Self::CompactStart),
        ("compact-committed", Self::CompactCommitted),
        ("vacuum-started", Self::VacuumStarted),
        ("vacuum-done", Self::VacuumDone),
        ("dv-rows-written", Self::DvRowsWritten),
        ("dv-vectors-written", Self::DvVectorsWritten),
    ];
}

impl std::str::FromStr for FaultPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown fault point '{s}' (one of {})", names.join(", "))
            })
    }
}

/// Where this run will crash, if anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    point: Option<FaultPoint>,
    /// SIGSTOP instead of SIGKILL: the process freezes there until sent SIGCONT.
    freeze: bool,
}

impl Faults {
    pub fn new(point: Option<FaultPoint>, freeze: bool) -> Self {
        Self { point, freeze }
    }

    /// The hook that hits this run's fault point at the steps of a table operation;
    /// `None` when no point is set.
    pub fn maintenance_hook(&self) -> Option<inlet_delta::maintenance::StepHook> {
        use inlet_delta::maintenance::MaintenanceStep as Step;
        let faults = *self;
        self.point?;
        Some(std::sync::Arc::new(move |step| {
            faults.hit(match step {
                Step::CompactStart => FaultPoint::CompactStart,
                Step::CompactCommitted => FaultPoint::CompactCommitted,
                Step::VacuumStarted => FaultPoint::VacuumStarted,
                Step::VacuumDone => FaultPoint::VacuumDone,
                Step::MergeRowsWritten => FaultPoint::DvRowsWritten,
                Step::MergeVectorsWritten => FaultPoint::DvVectorsWritten,
            })
        }))
    }

    /// Kills this process with SIGKILL if `here` is the configured point: no destructors,
    /// no flushes, exactly what `kill -9` does.
    pub fn hit(&self, here: FaultPoint) {
        if self.point == Some(here) && self.freeze {
            tracing::warn!(point = ?here, "fault point reached: stopping this process with SIGSTOP");
            let pid = std::process::id().to_string();
            // Returns once the process is continued (SIGCONT).
            let _ = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status();
            return;
        }
        if self.point == Some(here) {
            tracing::warn!(point = ?here, "fault point reached: killing this process with SIGKILL");
            let pid = std::process::id().to_string();
            // Through kill(1) so the crate keeps `unsafe_code = "forbid"`.
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            // kill(1) does not return when it worked; abort if it did not.
            std::process::abort();
        }
    }
}
