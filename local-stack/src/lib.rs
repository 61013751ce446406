//! A local stand-in for the AWS pieces around the worker, on loopback only: moto's SQS
//! and DynamoDB, idc-sim's Identity Center and Service Catalog, a Lambda Runtime API,
//! and an SQS event source mapping that feeds the real `assignment-worker` binary
//! batches the way Lambda does.
//! Used by the end-to-end scenarios, the local run and the benchmark.

pub mod emf;
pub mod event_source;
pub mod moto;
pub mod proxy;
pub mod requests;
pub mod runtime_api;
pub mod stack;
pub mod tally;
pub mod worker;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The workspace root (where target/ and .venv live).
pub fn workspace_root() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
