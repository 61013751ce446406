//! Request bodies and simulator seeds for scenarios, the local run and the benchmark.

use idc_sim::{Assignment, PortfolioPrincipal, Seed};
use serde_json::json;

pub const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-722326ba6a8a6d40";

pub fn permission_set(n: usize) -> String {
    format!("arn:aws:sso:::permissionSet/ssoins-722326ba6a8a6d40/ps-{n:016x}")
}

/// A principal id the simulator knows once seeded with [`seed`].
pub fn principal(n: usize) -> String {
    format!("9067a1b2c3-{n:08x}-1e0b-4b4b-9c3b-1b6c5a3e7f10")
}

pub fn account(n: usize) -> String {
    format!("{:012}", 100_000_000_000usize + n)
}

pub fn assignment(account_n: usize, permission_set_n: usize, principal_n: usize) -> Assignment {
    Assignment {
        instance_arn: INSTANCE.to_owned(),
        account_id: account(account_n),
        permission_set_arn: permission_set(permission_set_n),
        principal_type: "USER".to_owned(),
        principal_id: principal(principal_n),
    }
}

/// The instance, `permission_sets` permission sets and `principals` users.
pub fn seed(permission_sets: usize, principals: usize) -> Seed {
    Seed {
        instances: vec![INSTANCE.to_owned()],
        permission_sets: (0..permission_sets).map(permission_set).collect(),
        principals: (0..principals).map(principal).collect(),
        assignments: Vec::new(),
    }
}

/// A `create` or `delete` request body for `assignment`.
pub fn request(create: bool, assignment: &Assignment, correlation_id: &str) -> String {
    request_with(create, assignment, correlation_id, None)
}

pub fn request_with(
    create: bool,
    assignment: &Assignment,
    correlation_id: &str,
    not_after: Option<&str>,
) -> String {
    decision(create, assignment, correlation_id, None, not_after)
}

/// A request stamped with the upstream's `requestedAt` (SPEC §11 orders by it).
pub fn decision(
    create: bool,
    assignment: &Assignment,
    correlation_id: &str,
    requested_at: Option<&str>,
    not_after: Option<&str>,
) -> String {
    let mut body = json!({
        "action": if create { "create" } else { "delete" },
        "instanceArn": assignment.instance_arn,
        "permissionSetArn": assignment.permission_set_arn,
        "targetId": assignment.account_id,
        "principalType": assignment.principal_type,
        "principalId": assignment.principal_id,
        "correlationId": correlation_id,
    });
    if let Some(requested_at) = requested_at {
        body["requestedAt"] = json!(requested_at);
    }
    if let Some(not_after) = not_after {
        body["notAfter"] = json!(not_after);
    }
    body.to_string()
}

/// A Service Catalog portfolio id the scenarios seed.
pub fn portfolio(n: usize) -> String {
    format!("port-{n:013x}")
}

/// An IAM role of the scenarios' account, principal type `IAM`.
pub fn role(name: &str) -> String {
    format!("arn:aws:iam::111122223333:role/{name}")
}

/// A portfolio-principal request: associate (`add`) or disassociate.
pub fn portfolio_decision(
    add: bool,
    portfolio: &str,
    principal: &PortfolioPrincipal,
    correlation_id: &str,
    requested_at: Option<&str>,
) -> String {
    let mut body = json!({
        "action": if add { "associate-portfolio-principal" } else { "disassociate-portfolio-principal" },
        "portfolioId": portfolio,
        "principalType": principal.principal_type,
        "principalArn": principal.principal_arn,
        "correlationId": correlation_id,
    });
    if let Some(requested_at) = requested_at {
        body["requestedAt"] = json!(requested_at);
    }
    body.to_string()
}
