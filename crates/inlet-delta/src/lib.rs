//! The Delta sink: open or create the table, stream record batches into Parquet files, and
//! commit them (or MERGE by key) together with the pipeline's `txn` action so that each
//! batch lands once.

mod checks;
mod commit_log;
pub mod dv;
mod encoding;
mod error;
pub mod maintenance;
mod merge;
mod one_attempt;
pub mod properties;
pub mod protocol;
mod reconcile;
mod repair;
mod sink;
pub mod storage;
mod writer;

pub use deltalake::DeltaTableError;
pub use error::{store_transient, transient_text, SinkError};
pub use merge::{MergeOutcome, MergeSpec, MergeStrategy};
pub use reconcile::{same_type, TypeConflict};
pub use repair::{repair_protocol, RepairOutcome};
pub use sink::{
    BatchFile, DeltaSink, PipelineCommit, COMMIT_BATCH_KEY, COMMIT_FILES_KEY, COMMIT_PIPELINE_KEY,
};
pub use writer::empty_partition_values_to_null;
pub use writer::{DataFile, StagedFiles, TableWriter};
