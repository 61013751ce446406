//! assignment-worker: carries IAM Identity Center account-assignment requests from an
//! SQS queue to exactly one terminal outcome each. See README.md and SPEC §1.
//!
//! Layout: parsing ([`request`], [`ids`]), the lifecycle ([`lifecycle`],
//! [`guardrails`]) and the order of decisions ([`ledger`]) are pure; AWS sits behind
//! three ports ([`identity_center`], [`queue`], [`ledger::Ledger`]) with one real adapter
//! each and in-memory fakes ([`adapters`]); [`pacer`] keeps the process within its share
//! of Identity Center's limits; [`record_step`] makes one record's calls and
//! plans its messages, and [`handler`] runs a batch of records and stores the messages,
//! deciding by the invocation's [`clock::WallClock`].

pub mod adapters;
pub mod aws_call;
pub mod clock;
pub mod config;
pub mod guardrails;
pub mod handler;
pub mod identity_center;
pub mod ids;
pub mod ledger;
pub mod lifecycle;
pub mod messages;
pub mod metrics;
pub mod pacer;
pub mod portfolio;
pub mod portfolio_access;
pub mod progress;
pub mod queue;
pub mod record_step;
pub mod request;
pub mod service_catalog;
pub mod telemetry;
