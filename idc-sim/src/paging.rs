//! Opaque page tokens for the List operations of both services: a token names where
//! the next page starts, kept here so that the caller never sees or forges it.

use std::collections::{HashMap, VecDeque};

/// Tokens kept for later pages; beyond this the oldest expire, as AWS tokens do.
const MAX_TOKENS: usize = 10_000;

#[derive(Debug)]
pub(crate) struct PageTokens<C> {
    cursors: HashMap<String, C>,
    order: VecDeque<String>,
    issued: u64,
}

impl<C> Default for PageTokens<C> {
    fn default() -> Self {
        Self {
            cursors: HashMap::new(),
            order: VecDeque::new(),
            issued: 0,
        }
    }
}

impl<C> PageTokens<C> {
    /// A new token for `cursor`: a counter for uniqueness and random bits so that a
    /// made-up token is refused. Hex, so it fits every model's token pattern.
    pub(crate) fn issue(&mut self, cursor: C, rng: &mut fastrand::Rng) -> String {
        self.issued += 1;
        let token = format!("{:08x}{:016x}", self.issued, rng.u64(..));
        self.cursors.insert(token.clone(), cursor);
        self.order.push_back(token.clone());
        while self.order.len() > MAX_TOKENS {
            if let Some(old) = self.order.pop_front() {
                self.cursors.remove(&old);
            }
        }
        token
    }

    pub(crate) fn get(&self, token: &str) -> Option<&C> {
        self.cursors.get(token)
    }
}
