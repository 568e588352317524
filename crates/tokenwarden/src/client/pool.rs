//! A token pool: several tokens, each with its own pacer (its own rate budget), and requests
//! spread across them, to go past one token's rate limit (Genesys limits requests per token).

use super::pacer::Pacer;
use crate::manager::TokenManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One token of the pool and the pace of its requests.
pub(crate) struct Slot {
    pub(crate) tokens: TokenManager,
    pub(crate) pacer: Arc<Pacer>,
}

/// The tokens of a client beyond its first, with the first: requests go round-robin to the tokens
/// that are ready (held and not expired). A token that is not ready yet is fetched in the
/// background meanwhile (the managers' [`MintPacing`](crate::manager::MintPacing) spaces those fetches),
/// so that K tokens are never minted in a burst and no request waits for a token while another
/// is at hand.
pub(crate) struct Pool {
    pub(crate) slots: Vec<Slot>,
    next: AtomicUsize,
}

impl Pool {
    pub(crate) fn new(slots: Vec<Slot>) -> Self {
        Self {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// The slot for the next request: the next ready one in round-robin order, or, when none is
    /// ready, the next in turn (its caller waits for its token).
    pub(crate) fn pick(&self) -> &Slot {
        let k = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % k;
        let mut chosen = None;
        for i in 0..k {
            let slot = &self.slots[(start + i) % k];
            if slot.tokens.is_ready() {
                chosen.get_or_insert(slot);
            } else {
                slot.tokens.prefetch();
            }
        }
        chosen.unwrap_or(&self.slots[start])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;
    use crate::{AccessToken, StaticToken};

    fn slot(token: Option<&str>) -> Slot {
        let tokens = match token {
            Some(t) => TokenManager::builder(StaticToken::new(AccessToken::new(t))).build(),
            None => TokenManager::builder(StaticToken::new(AccessToken::new("x\ny"))).build(),
        };
        Slot {
            tokens,
            pacer: Arc::new(Pacer::new(None, true, true, Instant::now())),
        }
    }

    #[tokio::test]
    async fn requests_go_round_robin_to_ready_tokens_only() {
        let pool = Pool::new(vec![
            slot(Some("pool-token-a")),
            slot(None),
            slot(Some("pool-token-c")),
        ]);
        let picked: Vec<String> = (0..6)
            .map(|_| {
                let b = pool.pick().tokens.current().expect("ready");
                b.access_token().expose_secret().to_string()
            })
            .collect();
        assert_eq!(
            picked,
            [
                "pool-token-a",
                "pool-token-c",
                "pool-token-c",
                "pool-token-a",
                "pool-token-c",
                "pool-token-c"
            ]
        );
    }
}
