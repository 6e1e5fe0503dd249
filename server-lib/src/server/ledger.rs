//! The memory that responses on their way to clients hold, all together,
//! against one bound (`ServeOptions::max_response_memory`).
//!
//! A response holds its encoded bytes until its client takes them. A
//! client that opens many watches or snapshots and never reads them (a
//! zero flow-control window) made a run with a large array hold a copy per
//! stream. Each response has an [`Account`]; a message that would take the
//! total past the bound is refused with RESOURCE_EXHAUSTED instead of being
//! built for nobody. One response alone may always take what it needs, so a
//! single client can see any value the run holds.
//!
//! What a stream holds: hyper takes a stream's next message only once the
//! one before it has been handed to HTTP/2, which keeps it until the
//! client's window lets it go out, so a stream holds at most its two newest
//! messages. When it builds a message, the one two back has gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tonic::Status;

pub(crate) struct Ledger {
    bound: usize,
    total: AtomicUsize,
}

impl Ledger {
    pub fn new(bound: usize) -> Arc<Self> {
        Arc::new(Ledger {
            bound,
            total: AtomicUsize::new(0),
        })
    }

    /// A new response's account, holding nothing yet.
    pub fn open(self: &Arc<Self>) -> Account {
        Account {
            ledger: self.clone(),
            held: 0,
        }
    }

    /// What all responses hold now.
    #[cfg(test)]
    pub fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

/// One response's share of the ledger, given back when the response is
/// dropped.
pub(crate) struct Account {
    ledger: Arc<Ledger>,
    held: usize,
}

impl Account {
    /// Sets what this response holds to `bytes`, or says why there is no
    /// room for that much (holding what it held before).
    pub fn hold(&mut self, bytes: usize) -> Result<(), Status> {
        if bytes <= self.held {
            self.ledger
                .total
                .fetch_sub(self.held - bytes, Ordering::AcqRel);
            self.held = bytes;
            return Ok(());
        }
        let grow = bytes - self.held;
        let (held, bound) = (self.held, self.ledger.bound);
        self.ledger
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                // Alone (nothing held but ours), any size goes.
                (total + grow <= bound || total == held).then_some(total + grow)
            })
            .map_err(|total| {
                Status::resource_exhausted(format!(
                    "a response of {} MiB would take the run past its bound on \
                     memory for responses in flight ({} MiB, {} MiB held by \
                     others now): try again when other clients have read theirs, \
                     or raise ServeOptions::max_response_memory",
                    mib(bytes),
                    mib(bound),
                    mib(total - held)
                ))
            })?;
        self.held = bytes;
        Ok(())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        self.ledger.total.fetch_sub(self.held, Ordering::AcqRel);
    }
}

/// An account put in a unary response's extensions: the gate keeps it with
/// the response's body, which lives until the client has taken the bytes.
#[derive(Clone)]
pub(crate) struct HeldUntilSent(#[allow(dead_code)] Arc<Account>);

impl HeldUntilSent {
    pub fn new(account: Account) -> Self {
        HeldUntilSent(Arc::new(account))
    }
}

fn mib(bytes: usize) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_share_the_bound_and_give_back_what_they_held() {
        let ledger = Ledger::new(100);
        let mut a = ledger.open();
        let mut b = ledger.open();
        a.hold(60).unwrap();
        let refused = b.hold(50).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.message().contains("max_response_memory"),
            "{refused:?}"
        );
        b.hold(40).unwrap();
        assert_eq!(ledger.total(), 100);
        // Holding less gives the difference back.
        a.hold(10).unwrap();
        assert_eq!(ledger.total(), 50);
        b.hold(90).unwrap();
        drop(a);
        assert_eq!(ledger.total(), 90);
        drop(b);
        assert_eq!(ledger.total(), 0);
    }

    #[test]
    fn one_response_alone_may_be_larger_than_the_bound() {
        let ledger = Ledger::new(100);
        let mut big = ledger.open();
        big.hold(1000).unwrap();
        big.hold(5000).unwrap();
        // But not while it holds that much, for anyone else.
        assert!(ledger.open().hold(1).is_err());
        drop(big);
        ledger.open().hold(100).unwrap();
    }
}
