//! The Service Catalog port over aws-sdk-servicecatalog.

use aws_sdk_servicecatalog::Client;
use aws_sdk_servicecatalog::types::PrincipalType;

use crate::portfolio_access::{ListedPrincipal, PortfolioPrincipalType};
use crate::request::PortfolioChange;
use crate::service_catalog::{CallError, ErrorKind, ServiceCatalog};

use super::{SSO_OPERATION_TIMEOUT, call_error};

/// A portfolio holds at most a few hundred principals (20 per page); a list that goes
/// on past this many pages is a service fault, not a portfolio.
const MAX_PAGES: usize = 1000;

/// Build the client with retries off and a short operation timeout, as for Identity
/// Center: errors are retried through the queue.
pub struct ServiceCatalogClient {
    client: Client,
}

impl ServiceCatalogClient {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn principal_type(change: &PortfolioChange) -> PrincipalType {
    match change.principal.principal_type() {
        PortfolioPrincipalType::Iam => PrincipalType::Iam,
        PortfolioPrincipalType::IamPattern => PrincipalType::IamPattern,
    }
}

fn unreadable(message: String) -> CallError {
    CallError {
        kind: ErrorKind::ServerError,
        code: "UnreadableAnswer".to_owned(),
        message,
    }
}

impl ServiceCatalog for ServiceCatalogClient {
    #[tracing::instrument(skip_all, fields(portfolio = %change.portfolio))]
    async fn associate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        self.client
            .associate_principal_with_portfolio()
            .set_accept_language(change.accept_language.map(|l| l.as_str().to_owned()))
            .portfolio_id(change.portfolio.as_str())
            .principal_arn(change.principal.arn())
            .principal_type(principal_type(change))
            .send()
            .await
            .map(|_| ())
            .map_err(call_error)
    }

    #[tracing::instrument(skip_all, fields(portfolio = %change.portfolio))]
    async fn disassociate_principal(&self, change: &PortfolioChange) -> Result<(), CallError> {
        self.client
            .disassociate_principal_from_portfolio()
            .set_accept_language(change.accept_language.map(|l| l.as_str().to_owned()))
            .portfolio_id(change.portfolio.as_str())
            .principal_arn(change.principal.arn())
            .principal_type(principal_type(change))
            .send()
            .await
            .map(|_| ())
            .map_err(call_error)
    }

    /// All pages within one operation timeout: the step's deadline reserve counts the
    /// list as one call.
    #[tracing::instrument(skip_all, fields(portfolio = %change.portfolio))]
    async fn list_principals(
        &self,
        change: &PortfolioChange,
    ) -> Result<Vec<ListedPrincipal>, CallError> {
        tokio::time::timeout(SSO_OPERATION_TIMEOUT, self.list_pages(change))
            .await
            .unwrap_or_else(|_| {
                Err(CallError {
                    kind: ErrorKind::Timeout,
                    code: "Timeout".to_owned(),
                    message: format!(
                        "ListPrincipalsForPortfolio did not read every page within {} s",
                        SSO_OPERATION_TIMEOUT.as_secs()
                    ),
                })
            })
    }
}

impl ServiceCatalogClient {
    async fn list_pages(
        &self,
        change: &PortfolioChange,
    ) -> Result<Vec<ListedPrincipal>, CallError> {
        let mut principals = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_principals_for_portfolio()
                .set_accept_language(change.accept_language.map(|l| l.as_str().to_owned()))
                .portfolio_id(change.portfolio.as_str())
                .set_page_token(token.take())
                .send()
                .await
                .map_err(call_error)?;
            for principal in page.principals() {
                let (Some(arn), Some(kind)) =
                    (principal.principal_arn(), principal.principal_type())
                else {
                    return Err(unreadable(format!(
                        "a listed principal lacks its ARN or type: {principal:?}"
                    )));
                };
                let principal_type = PortfolioPrincipalType::parse(kind.as_str())
                    .ok_or_else(|| unreadable(format!("unknown PrincipalType {kind:?}")))?;
                principals.push(ListedPrincipal {
                    principal_type,
                    principal_arn: arn.to_owned(),
                });
            }
            match page.next_page_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(principals),
            }
        }
        Err(unreadable(format!(
            "ListPrincipalsForPortfolio still had pages after {MAX_PAGES}"
        )))
    }
}
