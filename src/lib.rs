//! assignment-worker: carries IAM Identity Center account-assignment requests from an
//! SQS queue to exactly one terminal outcome each. See README.md and SPEC §1.
//!
//! Layout: parsing ([`request`], [`ids`]) and the lifecycle ([`lifecycle`],
//! [`guardrails`]) are pure; AWS sits behind two ports ([`identity_center`], [`queue`])
//! with one real adapter each and in-memory fakes ([`adapters`]); [`handler`] ties them
//! together for one SQS batch.

pub mod adapters;
pub mod config;
pub mod guardrails;
pub mod handler;
pub mod identity_center;
pub mod ids;
pub mod lifecycle;
pub mod messages;
pub mod progress;
pub mod queue;
pub mod request;
pub mod telemetry;
