//! A local simulator of the IAM Identity Center admin API's account-assignment calls,
//! faithful to the behaviours that make the real one hard to drive: asynchronous
//! operations, the shared 20-per-second rate, at most 15 outstanding creates, conflicts
//! on the same account and permission set, statuses not yet visible right after
//! submit, and failures only visible by polling. Faults can be injected, time scaled,
//! and runs repeated from a seed.
//!
//! Requests are checked against the constraints of the AWS API models (botocore's
//! `service-2.json`; `tests/wire_model.rs` walks them), List operations page with
//! MaxResults/NextToken, and dates are epoch seconds on the real calendar
//! ([`Model::epoch_at_start`] plus simulated time).
//!
//! The same port serves the Service Catalog portfolio-principal calls (see [`catalog`]).

pub mod catalog;
pub mod model;
mod paging;
pub mod server;

pub use catalog::{PortfolioPrincipal, PortfolioPrincipalType, PortfolioSeed};
pub use model::{Assignment, Counters, DeleteMissing, Knobs, Model, Seed, SeedDocument};
pub use server::{Simulator, start};
