//! An object store from a URL: a local directory or any S3, behind `object_store`. The content
//! role keeps its media cache in one, `replay export` writes the archive to one; neither role
//! depends on the other for it (ARCHITECTURE.md invariant 5).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("object store {url}: {reason}")]
pub struct StoreError {
    url: String,
    reason: String,
}

/// Opens `file://DIR` (created if missing) or `s3://BUCKET` (credentials and region from the
/// `AWS_*` variables; `endpoint` for S3-compatible servers, path-style).
pub fn open(url: &str, endpoint: Option<&str>) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let fail = |reason: String| StoreError { url: url.to_owned(), reason };
    if let Some(dir) = url.strip_prefix("file://") {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| fail(e.to_string()))?;
        return Ok(Arc::new(store));
    }
    if let Some(bucket) = url.strip_prefix("s3://") {
        let bucket = bucket.trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            return Err(fail("expected s3://BUCKET".into()));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(endpoint) = endpoint {
            builder =
                builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        return builder
            .build()
            .map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            .map_err(|e| fail(e.to_string()));
    }
    Err(fail("expected file://DIR or s3://BUCKET".into()))
}
