//! DynamoDB exports in a `dynamodb` landing zone: an export's data waits until its
//! `manifest-summary.json` is written, and a full export's rows take their time from it.

use inlet_discover::{export_manifest_path, DiscoverError, ExportManifest, FileEvent};
use inlet_format::Format;
use tracing::info;

use crate::batch::PlannedFile;
use crate::error::{EngineError, Result};
use crate::pipeline::Pipeline;

/// How long a queued notification of export data waits before it comes again, when the
/// export's manifest is not written yet (AWS writes the manifests after the data).
pub(crate) const EXPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

impl Pipeline {
    /// With `format = "dynamodb"`: `found` without the data files of exports whose
    /// `manifest-summary.json` does not exist yet (their full-export rows would have no time),
    /// which are returned apart. Other formats and files pass as they are.
    pub(crate) async fn hold_unfinished_exports(
        &mut self,
        found: Vec<FileEvent>,
    ) -> Result<(Vec<FileEvent>, Vec<String>)> {
        if self.cfg.source.format != Format::Dynamodb {
            return Ok((found, Vec::new()));
        }
        let mut ready = Vec::with_capacity(found.len());
        let mut waiting = Vec::new();
        for file in found {
            match export_manifest_path(&file.path) {
                Some(manifest) if !self.load_manifest(&manifest).await? => waiting.push(file.path),
                _ => ready.push(file),
            }
        }
        if !waiting.is_empty() {
            info!(
                files = waiting.len(),
                "DynamoDB export data waits until its manifest-summary.json is written"
            );
        }
        Ok((ready, waiting))
    }

    /// Reads the manifests of the exports `files` belong to, unless already known, so their
    /// decoding finds the exports' times (a batch replayed after a restart needs them too).
    pub(crate) async fn load_export_manifests(&mut self, files: &[PlannedFile]) -> Result<()> {
        if self.cfg.source.format != Format::Dynamodb {
            return Ok(());
        }
        for file in files {
            if let Some(manifest) = export_manifest_path(&file.path) {
                self.load_manifest(&manifest).await?;
            }
        }
        Ok(())
    }

    /// Whether the manifest at `path` exists, keeping its export's time when it does.
    async fn load_manifest(&mut self, path: &str) -> Result<bool> {
        if self.exports.contains_key(path) {
            return Ok(true);
        }
        let bytes = match self.source.read(path).await {
            Ok(bytes) => bytes,
            Err(DiscoverError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let manifest =
            ExportManifest::parse(&bytes).map_err(|source| EngineError::ExportManifest {
                path: path.to_string(),
                source,
            })?;
        // An incremental export's lines carry their own times; its time is not used.
        self.exports.insert(
            path.to_string(),
            manifest.export_time_micros.unwrap_or_default(),
        );
        Ok(true)
    }
}
