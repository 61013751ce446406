//! The Service Catalog port: the three calls portfolio-principal requests need (SPEC §9).

use std::future::Future;

pub use crate::aws_call::{CallError, ErrorKind};
use crate::portfolio_access::ListedPrincipal;
use crate::request::PortfolioChange;

/// The Service Catalog admin API as the worker uses it. Associate and disassociate
/// answer synchronously; their effect shows in the list some time later.
pub trait ServiceCatalog: Send + Sync {
    fn associate_principal(
        &self,
        change: &PortfolioChange,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// Always sends the change's PrincipalType: the API's default (`IAM`) would answer
    /// ResourceNotFound for a pattern, which looks like "already gone".
    fn disassociate_principal(
        &self,
        change: &PortfolioChange,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
    /// Every principal of the change's portfolio, all pages read.
    fn list_principals(
        &self,
        change: &PortfolioChange,
    ) -> impl Future<Output = Result<Vec<ListedPrincipal>, CallError>> + Send;
}
