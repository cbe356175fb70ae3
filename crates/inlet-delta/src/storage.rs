//! How delta-rs opens `s3://` tables: through inlet-aws's S3 client and credential chain
//! (the same the source and SQS use), with delta-rs's default log store on top.

use std::sync::{Arc, Once};

use deltalake::logstore::{
    default_logstore, logstore_factories, object_store_factories, LogStore, LogStoreFactory,
    ObjectStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableError};
use object_store::path::Path;
use url::Url;

/// Registers inlet's S3 handlers with delta-rs, once per process. Every entry point that
/// opens a table calls it.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for scheme in ["s3", "s3a"] {
            if let Ok(url) = Url::parse(&format!("{scheme}://")) {
                object_store_factories().insert(url.clone(), Arc::new(S3Stores));
                logstore_factories().insert(url, Arc::new(S3LogStores));
            }
        }
    });
}

struct S3Stores;

impl ObjectStoreFactory for S3Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let store = inlet_aws::s3_store(
            url,
            &config.raw,
            inlet_aws::UnknownKeys::Ignore,
            Some(config.retry.clone()),
        )
        .map_err(|e| DeltaTableError::GenericError {
            source: Box::new(e),
        })?;
        let path = Path::from_url_path(url.path())?;
        Ok((Arc::new(store), path))
    }
}

/// S3 now has conditional writes (`If-None-Match`), which object_store uses for a commit's
/// put-if-absent: the default log store is safe there, with no lock table.
struct S3LogStores;

impl LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
