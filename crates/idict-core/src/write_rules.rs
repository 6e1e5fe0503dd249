//! What a steering write must pass: a writable key's rule (its type,
//! bounds, validators), and the FIFO queue type that holds accepted writes
//! until the computation's next safe point. The run's side of steering
//! (declaring keys, taking writes, applying them) is `dict::writes`.

use crate::model::{AppliedWrite, WritableInfo};
use crate::tuning::MAX_PENDING_WRITES;
use crate::value::{Value, ValueKind, format_number};
use std::collections::VecDeque;
use std::sync::Arc;

/// A check of a proposed value; `Err` holds the reason shown to the client.
pub type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// The rule for one writable key.
#[derive(Clone)]
pub struct WritableSpec {
    pub kind: ValueKind,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
    pub(crate) validator: Option<Validator>,
    pub(crate) description: String,
}

/// Why a write was refused: the client sees `INVALID_ARGUMENT` with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

impl WritableSpec {
    pub(crate) fn for_initial(initial: &Value) -> Self {
        WritableSpec {
            kind: initial.kind(),
            min: None,
            max: None,
            validator: None,
            description: String::new(),
        }
    }

    pub fn info(&self) -> WritableInfo {
        WritableInfo {
            kind: self.kind,
            min: self.min,
            max: self.max,
            description: self.describe(),
        }
    }

    /// "float, 0 <= x <= 0.25"-style text, or the author's own description.
    pub(crate) fn describe(&self) -> String {
        if !self.description.is_empty() {
            return self.description.clone();
        }
        match (self.min.map(format_number), self.max.map(format_number)) {
            (Some(a), Some(b)) => format!("{}, {a} <= x <= {b}", self.kind),
            (Some(a), None) => format!("{}, x >= {a}", self.kind),
            (None, Some(b)) => format!("{}, x <= {b}", self.kind),
            (None, None) => self.kind.to_string(),
        }
    }

    /// Checks a proposed value for `key`, returning it as it will be stored
    /// (an integer written to a float key becomes a float).
    pub(crate) fn check(&self, key: &str, value: Value) -> Result<Value, Rejected> {
        let value = match (self.kind, value) {
            (ValueKind::Float, Value::Int(i)) => Value::Float(i as f64),
            (kind, v) if v.kind() == kind => v,
            (kind, v) => {
                return Err(Rejected(format!(
                    "{key} expects {kind}, got {} ({})",
                    v.kind(),
                    v.preview()
                )));
            }
        };
        if let Some(x) = value.as_scalar() {
            if (self.min.is_some() || self.max.is_some()) && x.is_nan() {
                return Err(Rejected(format!("{key} = NaN is not within its bounds")));
            }
            if let Some(min) = self.min.filter(|&m| x < m) {
                return Err(Rejected(format!(
                    "{key} = {} is below the minimum {}",
                    value.preview(),
                    format_number(min)
                )));
            }
            if let Some(max) = self.max.filter(|&m| x > m) {
                return Err(Rejected(format!(
                    "{key} = {} is above the maximum {}",
                    value.preview(),
                    format_number(max)
                )));
            }
        }
        if let Some(validate) = &self.validator {
            validate(&value)
                .map_err(|why| Rejected(format!("{key} = {} refused: {why}", value.preview())))?;
        }
        Ok(value)
    }
}

/// A write accepted by the server, waiting for the computation's safe point.
#[derive(Debug, Clone)]
pub(crate) struct PendingWrite {
    pub id: u64,
    pub key: String,
    pub value: Value,
    pub origin: String,
}

/// Accepted writes in arrival order, bounded.
#[derive(Debug, Default)]
pub(crate) struct WriteQueue {
    next_id: u64,
    queue: VecDeque<PendingWrite>,
}

impl WriteQueue {
    /// Queues a write; returns its id and position, or `None` when full.
    pub fn push(&mut self, key: String, value: Value, origin: String) -> Option<(u64, usize)> {
        if self.queue.len() >= MAX_PENDING_WRITES {
            return None;
        }
        self.next_id += 1;
        self.queue.push_back(PendingWrite {
            id: self.next_id,
            key,
            value,
            origin,
        });
        Some((self.next_id, self.queue.len()))
    }

    /// A write with the next id, for the caller to keep (a scheduled one).
    pub fn allocate(&mut self, key: String, value: Value, origin: String) -> PendingWrite {
        self.next_id += 1;
        PendingWrite {
            id: self.next_id,
            key,
            value,
            origin,
        }
    }

    pub fn take_all(&mut self) -> VecDeque<PendingWrite> {
        std::mem::take(&mut self.queue)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

impl PendingWrite {
    pub(crate) fn into_applied(self) -> AppliedWrite {
        AppliedWrite {
            write_id: self.id,
            key: self.key,
            value: self.value,
            origin: self.origin,
            version: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(min: Option<f64>, max: Option<f64>) -> WritableSpec {
        WritableSpec {
            min,
            max,
            ..WritableSpec::for_initial(&Value::Float(0.1))
        }
    }

    #[test]
    fn type_and_bounds_are_checked_with_messages_that_name_the_problem() {
        let s = spec(Some(0.0), Some(0.25));
        assert_eq!(s.check("dt", Value::Float(0.2)), Ok(Value::Float(0.2)));
        assert_eq!(s.check("dt", Value::Int(0)), Ok(Value::Float(0.0)));
        let e = s.check("dt", Value::Float(0.5)).unwrap_err().0;
        assert!(
            e.contains("dt") && e.contains("above the maximum 0.25"),
            "{e}"
        );
        let e = s.check("dt", Value::Float(-1.0)).unwrap_err().0;
        assert!(e.contains("below the minimum 0"), "{e}");
        let e = s.check("dt", Value::from("fast")).unwrap_err().0;
        assert!(e.contains("dt expects float, got str"), "{e}");
        let tiny = spec(None, Some(1.5500031e-5));
        let e = tiny.check("dt", Value::Float(1.0)).unwrap_err().0;
        assert!(e.ends_with("above the maximum 1.55e-5"), "{e}");
        assert_eq!(tiny.describe(), "float, x <= 1.55e-5");
        assert!(s.check("dt", Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn custom_validators_explain_refusals() {
        let mut s = WritableSpec::for_initial(&Value::Int(3));
        s.validator = Some(Arc::new(|v| {
            if v.as_i64().is_some_and(|i| i % 2 == 1) {
                Ok(())
            } else {
                Err("must be odd".into())
            }
        }));
        assert!(s.check("n", Value::Int(5)).is_ok());
        let e = s.check("n", Value::Int(4)).unwrap_err().0;
        assert!(e.contains("must be odd"), "{e}");
        assert!(s.check("n", Value::Float(5.0)).is_err());
    }

    #[test]
    fn queue_is_fifo_and_bounded() {
        let mut q = WriteQueue::default();
        assert_eq!(q.push("a".into(), Value::Int(1), "x".into()), Some((1, 1)));
        assert_eq!(q.push("b".into(), Value::Int(2), "x".into()), Some((2, 2)));
        let all: Vec<_> = q.take_all().into_iter().map(|w| w.key).collect();
        assert_eq!(all, ["a", "b"]);
        for _ in 0..MAX_PENDING_WRITES {
            assert!(q.push("a".into(), Value::Null, String::new()).is_some());
        }
        assert!(q.push("a".into(), Value::Null, String::new()).is_none());
    }
}
