//! How the ranks' values of a key become the run's one value.

use idict::Value;

/// How a key's values on the ranks are combined into the value clients
/// see; each rank's own value stays readable under `KEY@ranks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    Sum,
    Min,
    Max,
    /// The default: the mean, or the value itself when every rank holds
    /// the same (a step count stays a whole number).
    #[default]
    Mean,
}

impl Reduction {
    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Min => "min",
            Reduction::Max => "max",
            Reduction::Mean => "mean",
        }
    }

    /// The run's value from each rank's, `values[rank]`. `ints`: every
    /// rank's value was a whole number (`Value::Int`), kept so where the
    /// reduction allows. A NaN on any rank (or a rank without the key,
    /// which counts as NaN) makes the run's value NaN, whatever the
    /// reduction: a min or max never hides a rank that blew up.
    pub fn apply(self, values: &[f64], ints: bool) -> Value {
        let Some(&first) = values.first() else {
            return Value::Null;
        };
        let same = values.iter().all(|v| v.to_bits() == first.to_bits());
        if values.iter().any(|v| v.is_nan()) {
            return Value::Float(f64::NAN);
        }
        let number = |x: f64| {
            if ints && x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
                Value::Int(x as i64)
            } else {
                Value::Float(x)
            }
        };
        match self {
            Reduction::Sum => number(values.iter().sum()),
            Reduction::Min => number(values.iter().copied().fold(f64::NAN, f64::min)),
            Reduction::Max => number(values.iter().copied().fold(f64::NAN, f64::max)),
            Reduction::Mean if same => number(first),
            Reduction::Mean => Value::Float(values.iter().sum::<f64>() / values.len() as f64),
        }
    }
}

/// The number a scalar value counts as in a reduction, and whether it is
/// a whole number; `None` for what is not a number.
pub fn as_number(v: &Value) -> Option<(f64, bool)> {
    match v {
        Value::Int(i) => Some((*i as f64, true)),
        Value::Float(f) => Some((*f, false)),
        Value::Bool(b) => Some((f64::from(u8::from(*b)), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reduction_over_four_ranks() {
        let v = [1.0, 4.0, 2.0, 3.0];
        assert_eq!(Reduction::Sum.apply(&v, false), Value::Float(10.0));
        assert_eq!(Reduction::Min.apply(&v, false), Value::Float(1.0));
        assert_eq!(Reduction::Max.apply(&v, true), Value::Int(4));
        assert_eq!(Reduction::Mean.apply(&v, true), Value::Float(2.5));
        // A step count the ranks agree on stays a whole number.
        assert_eq!(Reduction::Mean.apply(&[7.0; 4], true), Value::Int(7));
        // A NaN on one rank shows, whatever the reduction.
        let nan = [1.0, f64::NAN, 2.0];
        for r in [
            Reduction::Sum,
            Reduction::Min,
            Reduction::Max,
            Reduction::Mean,
        ] {
            assert!(
                matches!(r.apply(&nan, true), Value::Float(x) if x.is_nan()),
                "{r:?}"
            );
        }
    }
}
