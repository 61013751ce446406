//! Accounting for a run: each request's terminal records, and whether the simulator's
//! final assignments match what the outcomes imply.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use idc_sim::{Assignment, PortfolioPrincipal};
use serde_json::Value;

use crate::stack::Collected;

/// Correlation ids that have at least one terminal record.
pub fn finished_ids(collected: &Collected) -> HashSet<String> {
    outcomes_by_id(collected).into_keys().collect()
}

/// Each request's distinct terminal outcomes, and how many records said so.
pub fn outcomes_by_id(collected: &Collected) -> BTreeMap<String, (BTreeSet<String>, usize)> {
    let mut by_id: BTreeMap<String, (BTreeSet<String>, usize)> = BTreeMap::new();
    for event in &collected.outcomes {
        // An expiry's event reports the grant's revoke, not the grant's own outcome.
        if event.get("trigger").is_some() {
            continue;
        }
        if let (Some(id), Some(outcome)) = (
            event.get("correlationId").and_then(Value::as_str),
            event.get("outcome").and_then(Value::as_str),
        ) {
            let entry = by_id.entry(id.to_owned()).or_default();
            entry.0.insert(outcome.to_owned());
            entry.1 += 1;
        }
    }
    for record in collected.dead_letters.iter().filter(|r| !r.is_expiry()) {
        if let Some(id) = record.correlation_id() {
            // A worker dead letter comes with a dead-lettered outcome event: one record.
            let entry = by_id.entry(id).or_default();
            if entry.0.insert("dead-lettered".to_owned()) {
                entry.1 += 1;
            }
        }
    }
    by_id
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub requests: usize,
    pub succeeded: usize,
    pub already_satisfied: usize,
    /// A later decision for the same assignment stood (SPEC §11).
    pub superseded: usize,
    pub dead_lettered: usize,
    /// No terminal record at all.
    pub lost: usize,
    /// Both done (succeeded or already-satisfied) and dead-lettered: never allowed.
    pub contradictory: usize,
    /// Both succeeded and already-satisfied: a step that ran twice after a crash
    /// (a revoke redone finds the access already gone). Allowed, counted.
    pub equivalent: usize,
    /// Extra records repeating the same outcome (allowed: at-least-once).
    pub duplicates: usize,
    /// Assignments present that should not be, or absent that should be.
    pub wrong_effects: usize,
    /// Assignments (and portfolio principals) with several decisions whose final state
    /// is not what the latest decision asked for.
    pub wrong_end_states: usize,
    /// Of `requests`, those about Service Catalog portfolio principals.
    pub portfolio_requests: usize,
}

impl Tally {
    pub fn of(ids: &[String], collected: &Collected) -> Tally {
        let by_id = outcomes_by_id(collected);
        let mut tally = Tally {
            requests: ids.len(),
            ..Tally::default()
        };
        for id in ids {
            match by_id.get(id) {
                None => tally.lost += 1,
                Some((outcomes, records)) => {
                    tally.duplicates += records.saturating_sub(outcomes.len());
                    if outcomes.contains("dead-lettered") && outcomes.len() > 1 {
                        tally.contradictory += 1;
                    } else if outcomes.len() > 1 {
                        tally.equivalent += 1;
                    }
                    match outcomes.iter().next().map(String::as_str) {
                        Some("succeeded") => tally.succeeded += 1,
                        Some("already-satisfied") => tally.already_satisfied += 1,
                        Some("superseded") => tally.superseded += 1,
                        _ => tally.dead_lettered += 1,
                    }
                }
            }
        }
        tally
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "requests: {} ({} on portfolio principals), succeeded: {}, already-satisfied: {}, superseded: {}, dead-lettered: {}, lost: {}, wrong-effects: {}, wrong-end-states: {}",
            self.requests,
            self.portfolio_requests,
            self.succeeded,
            self.already_satisfied,
            self.superseded,
            self.dead_lettered,
            self.lost,
            self.wrong_effects,
            self.wrong_end_states
        )
    }
}

/// What a request was meant to do to one assignment.
#[derive(Debug, Clone)]
pub struct Intent {
    pub correlation_id: String,
    pub assignment: Assignment,
    pub create: bool,
}

/// Counts the assignments whose presence disagrees with the outcomes, given each
/// request's single intent (each request in a checked run touches its own assignment),
/// the assignments seeded before the run, and the simulator's final set.
pub fn wrong_effects(
    intents: &[Intent],
    seeded: &[Assignment],
    collected: &Collected,
    finals: &[Assignment],
) -> usize {
    wrong_effect_list(intents, seeded, collected, finals).len()
}

/// The assignments [`wrong_effects`] counts.
pub fn wrong_effect_list(
    intents: &[Intent],
    seeded: &[Assignment],
    collected: &Collected,
    finals: &[Assignment],
) -> Vec<Assignment> {
    let by_id = outcomes_by_id(collected);
    let finals: BTreeSet<&Assignment> = finals.iter().collect();
    let mut expected: BTreeSet<&Assignment> = seeded.iter().collect();
    for intent in intents {
        let outcome = by_id
            .get(&intent.correlation_id)
            .and_then(|(o, _)| o.iter().next().cloned());
        match (intent.create, outcome.as_deref()) {
            (true, Some("succeeded" | "already-satisfied")) => {
                expected.insert(&intent.assignment);
            }
            (false, Some("succeeded" | "already-satisfied")) => {
                expected.remove(&intent.assignment);
            }
            // Dead-lettered: no change. Lost: counted as lost, expect no change either.
            _ => {}
        }
    }
    expected
        .symmetric_difference(&finals)
        .map(|assignment| (*assignment).clone())
        .collect()
}

/// One of several decisions about the same assignment, stamped with `requestedAt`.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub intent: Intent,
    /// RFC 3339, all in the same form, so that text order is time order.
    pub requested_at: String,
}

/// Counts the assignments whose final presence differs from their latest decision
/// (SPEC §11's order: requestedAt, a revoke before a grant, then the correlation id).
/// An assignment whose latest decision was dead-lettered is left out: its dead letter
/// already says the decision was not carried out.
pub fn wrong_end_states(
    decisions: &[Stamped],
    collected: &Collected,
    finals: &[Assignment],
) -> usize {
    let by_id = outcomes_by_id(collected);
    let finals: BTreeSet<&Assignment> = finals.iter().collect();
    let mut latest: BTreeMap<&Assignment, &Stamped> = BTreeMap::new();
    let rank = |d: &Stamped| {
        (
            d.requested_at.clone(),
            !d.intent.create,
            d.intent.correlation_id.clone(),
        )
    };
    for decision in decisions {
        let slot = latest
            .entry(&decision.intent.assignment)
            .or_insert(decision);
        if rank(decision) > rank(slot) {
            *slot = decision;
        }
    }
    latest
        .into_iter()
        .filter(|(_, decision)| {
            !by_id
                .get(&decision.intent.correlation_id)
                .is_some_and(|(outcomes, _)| outcomes.contains("dead-lettered"))
        })
        .filter(|(assignment, decision)| finals.contains(assignment) != decision.intent.create)
        .count()
}

/// One of several decisions about the same portfolio principal, stamped with
/// `requestedAt`.
#[derive(Debug, Clone)]
pub struct PortfolioDecision {
    pub correlation_id: String,
    pub portfolio: String,
    pub principal: PortfolioPrincipal,
    pub add: bool,
    /// RFC 3339, all in the same form, so that text order is time order.
    pub requested_at: String,
}

/// [`wrong_end_states`] for portfolio principals: `finals` holds every (portfolio,
/// principal) the simulator has at the end.
pub fn wrong_portfolio_end_states(
    decisions: &[PortfolioDecision],
    collected: &Collected,
    finals: &BTreeSet<(String, PortfolioPrincipal)>,
) -> usize {
    let by_id = outcomes_by_id(collected);
    let rank = |d: &PortfolioDecision| (d.requested_at.clone(), !d.add, d.correlation_id.clone());
    let mut latest: BTreeMap<(String, PortfolioPrincipal), &PortfolioDecision> = BTreeMap::new();
    for decision in decisions {
        let key = (decision.portfolio.clone(), decision.principal.clone());
        let slot = latest.entry(key).or_insert(decision);
        if rank(decision) > rank(slot) {
            *slot = decision;
        }
    }
    latest
        .into_iter()
        .filter(|(_, decision)| {
            !by_id
                .get(&decision.correlation_id)
                .is_some_and(|(outcomes, _)| outcomes.contains("dead-lettered"))
        })
        .filter(|(key, decision)| finals.contains(key) != decision.add)
        .count()
}
