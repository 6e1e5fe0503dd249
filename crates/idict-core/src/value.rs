//! `Value`: the typed values an `IDict` holds and the wire carries, and the
//! conversions into and out of them. Arrays keep their bytes in a shared,
//! reference-counted buffer so publishing one never copies it.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;

/// Element type of an [`NdArray`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    I64,
    I32,
    U8,
    /// One byte per element, 0 or 1.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// The short name used by the CLI and GUI (`f64`, `bool`, …).
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::U8 => "u8",
            DType::Bool => "bool",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes and a shape do not make an array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArrayError {
    #[error("array shape {shape:?} overflows the address space")]
    ShapeOverflow { shape: Vec<usize> },
    #[error("array of {dims} dimensions: at most {max} are allowed", max = NdArray::MAX_DIMS)]
    TooManyDims { dims: usize },
    #[error("array of dtype {dtype} and shape {shape:?} needs {expected} bytes, got {actual}")]
    LengthMismatch {
        dtype: DType,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
}

/// An n-dimensional array: little-endian, row-major elements of one dtype in
/// a shared buffer. Cloning shares the buffer.
#[derive(Clone, PartialEq)]
pub struct NdArray {
    dtype: DType,
    shape: Vec<usize>,
    data: Bytes,
}

impl NdArray {
    /// The most dimensions an array may have (numpy's limit before 2.0).
    pub const MAX_DIMS: usize = 32;

    /// An array from raw little-endian bytes; checks that the byte length
    /// matches `shape` × `dtype`.
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: Bytes) -> Result<Self, ArrayError> {
        if shape.len() > Self::MAX_DIMS {
            return Err(ArrayError::TooManyDims { dims: shape.len() });
        }
        // Every dimension counts, even beside a zero one: an empty array of
        // shape [0, 2^63] is no array numpy (or any viewer) can make.
        let overflow = || ArrayError::ShapeOverflow {
            shape: shape.clone(),
        };
        shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(overflow)?;
        let expected = shape.iter().product::<usize>() * dtype.size();
        if expected != data.len() {
            return Err(ArrayError::LengthMismatch {
                dtype,
                shape,
                expected,
                actual: data.len(),
            });
        }
        Ok(NdArray { dtype, shape, data })
    }

    /// A 1-D or n-D array of `f64` taking ownership of `values` without copying
    /// (on little-endian machines). `shape` must multiply to `values.len()`.
    pub fn from_f64_vec(values: Vec<f64>, shape: Vec<usize>) -> Result<Self, ArrayError> {
        Self::from_bytes(DType::F64, shape, Element::into_bytes(values))
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The raw little-endian bytes (shared).
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// Element `i` (row-major) as `f64`, whatever the dtype.
    pub fn get_f64(&self, i: usize) -> Option<f64> {
        let size = self.dtype.size();
        let b = self.data.get(i * size..(i + 1) * size)?;
        Some(match self.dtype {
            DType::F64 => f64::from_le_bytes(b.try_into().ok()?),
            DType::F32 => f32::from_le_bytes(b.try_into().ok()?) as f64,
            DType::I64 => i64::from_le_bytes(b.try_into().ok()?) as f64,
            DType::I32 => i32::from_le_bytes(b.try_into().ok()?) as f64,
            DType::U8 => b[0] as f64,
            DType::Bool => (b[0] != 0) as u8 as f64,
        })
    }

    /// All elements converted to `f64` (a copy), row-major.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        if self.dtype == DType::F64
            && cfg!(target_endian = "little")
            && let Ok(s) = bytemuck::try_cast_slice::<u8, f64>(&self.data)
        {
            return s.to_vec();
        }
        (0..self.len()).filter_map(|i| self.get_f64(i)).collect()
    }

    /// Minimum, maximum and mean of the finite elements, if there are any.
    pub fn stats(&self) -> Option<ArrayStats> {
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        let mut n = 0usize;
        for i in 0..self.len() {
            if let Some(x) = self.get_f64(i).filter(|x| x.is_finite()) {
                min = min.min(x);
                max = max.max(x);
                sum += x;
                n += 1;
            }
        }
        (n > 0).then(|| ArrayStats {
            min,
            max,
            mean: sum / n as f64,
            finite: n,
        })
    }
}

/// Summary of an array's finite elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrayStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// How many elements were finite.
    pub finite: usize,
}

impl fmt::Debug for NdArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NdArray<{}>{:?}", self.dtype, self.shape)
    }
}

/// A number type that can be an array element.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
    /// The elements as little-endian bytes; takes ownership without copying
    /// where the layout allows.
    fn into_bytes(values: Vec<Self>) -> Bytes;
    fn slice_to_bytes(values: &[Self]) -> Bytes;
}

/// Owner that lets `Bytes` share a `Vec<T>`'s allocation.
struct VecOwner<T: bytemuck::Pod>(Vec<T>);
impl<T: bytemuck::Pod> AsRef<[u8]> for VecOwner<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

macro_rules! element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            fn into_bytes(values: Vec<Self>) -> Bytes {
                if cfg!(target_endian = "little") {
                    Bytes::from_owner(VecOwner(values))
                } else {
                    Self::slice_to_bytes(&values)
                }
            }
            fn slice_to_bytes(values: &[Self]) -> Bytes {
                if cfg!(target_endian = "little") {
                    Bytes::copy_from_slice(bytemuck::cast_slice(values))
                } else {
                    Bytes::from(
                        values
                            .iter()
                            .flat_map(|v| v.to_le_bytes())
                            .collect::<Vec<u8>>(),
                    )
                }
            }
        }
    };
}
element!(f64, DType::F64);
element!(f32, DType::F32);
element!(i64, DType::I64);
element!(i32, DType::I32);
element!(u8, DType::U8);

impl Element for bool {
    const DTYPE: DType = DType::Bool;
    fn into_bytes(values: Vec<Self>) -> Bytes {
        Self::slice_to_bytes(&values)
    }
    fn slice_to_bytes(values: &[Self]) -> Bytes {
        Bytes::from(values.iter().map(|&b| b as u8).collect::<Vec<u8>>())
    }
}

/// A typed value.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Bytes),
    Array(NdArray),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
}

/// The kind of a [`Value`], without its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Bytes,
    Array,
    List,
    Map,
}

impl ValueKind {
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool => "bool",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Str => "str",
            ValueKind::Bytes => "bytes",
            ValueKind::Array => "array",
            ValueKind::List => "list",
            ValueKind::Map => "map",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Value {
    /// A rough byte size on the wire (for chunking and for bounds).
    pub fn approx_wire_bytes(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 8,
            Value::Bytes(b) => b.len() + 8,
            Value::Array(a) => a.bytes().len() + 16 + 8 * a.shape().len(),
            Value::List(l) => l.iter().map(Value::approx_wire_bytes).sum::<usize>() + 8,
            Value::Map(m) => {
                m.iter()
                    .map(|(k, v)| k.len() + v.approx_wire_bytes())
                    .sum::<usize>()
                    + 8
            }
            _ => 12,
        }
    }

    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Str(_) => ValueKind::Str,
            Value::Bytes(_) => ValueKind::Bytes,
            Value::Array(_) => ValueKind::Array,
            Value::List(_) => ValueKind::List,
            Value::Map(_) => ValueKind::Map,
        }
    }

    /// The value as a number if it is a numeric scalar (Int, Float or Bool);
    /// these are the values whose history is recorded.
    pub fn as_scalar(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            Value::Int(i) => Some(i as f64),
            Value::Bool(b) => Some(b as u8 as f64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(x) => Some(x),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&NdArray> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An n-D array of numbers; `shape` must multiply to `values.len()`.
    pub fn array<T: Element>(values: Vec<T>, shape: Vec<usize>) -> Result<Value, ArrayError> {
        NdArray::from_bytes(T::DTYPE, shape, T::into_bytes(values)).map(Value::Array)
    }

    /// The value as JSON (arrays become nested lists of numbers; bytes a
    /// list of integers; non-finite floats become null, as JSON has no NaN).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Bytes(b) => J::Array(b.iter().map(|&x| J::from(x)).collect()),
            Value::Array(a) => {
                let flat: Vec<J> = (0..a.len())
                    .map(|i| {
                        // i64 read as such: through f64 it would lose
                        // every value past 2^53.
                        if a.dtype() == DType::I64 {
                            let b = a.bytes().get(i * 8..(i + 1) * 8);
                            return b
                                .and_then(|b| b.try_into().ok())
                                .map_or(J::Null, |b| J::from(i64::from_le_bytes(b)));
                        }
                        let x = a.get_f64(i).unwrap_or(f64::NAN);
                        match a.dtype() {
                            DType::Bool => J::Bool(x != 0.0),
                            DType::F64 | DType::F32 => {
                                serde_json::Number::from_f64(x).map_or(J::Null, J::Number)
                            }
                            _ => J::from(x as i64),
                        }
                    })
                    .collect();
                nest(flat, a.shape())
            }
            Value::List(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }
}

/// `s` with control characters escaped (`\u{1b}`), for a terminal: a run's
/// name or key comes from its program, and must not drive the terminal.
pub fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// A number as people write it: plain for moderate magnitudes (`0.25`,
/// `1200`), else a short exponent (`1.55e-5`); trailing zeros dropped. Used
/// wherever idict shows a number to a person (errors, CLI, inspector).
pub fn format_number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x == 0.0 || (1e-3..1e6).contains(&x.abs()) {
        let s = format!("{x:.6}");
        return s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let s = format!("{x:.4e}");
    match s.split_once('e') {
        Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.')),
        None => s,
    }
}

/// Turns row-major elements into nested JSON lists of the given shape.
fn nest(flat: Vec<serde_json::Value>, shape: &[usize]) -> serde_json::Value {
    match shape {
        [] => flat.into_iter().next().unwrap_or(serde_json::Value::Null),
        [_] => serde_json::Value::Array(flat),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            if inner == 0 {
                return serde_json::Value::Array(vec![]);
            }
            let mut it = flat.into_iter();
            let rows = (0..shape[0])
                .map(|_| nest(it.by_ref().take(inner).collect(), rest))
                .collect();
            serde_json::Value::Array(rows)
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Float(x) => write!(f, "Float({x:?})"),
            Value::Str(s) => write!(f, "Str({s:?})"),
            Value::Bytes(b) => write!(f, "Bytes(len {})", b.len()),
            Value::Array(a) => a.fmt(f),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Map(m) => f.debug_map().entries(m).finish(),
        }
    }
}

impl Value {
    /// A short form for messages (a refused write, say): at most about 80
    /// characters, and a cost that never grows with the value. A client's
    /// 12 MB string must not come back as a 12 MB error.
    pub fn preview(&self) -> String {
        const CHARS: usize = 40;
        match self {
            Value::Str(s) if s.chars().count() > CHARS => {
                let head: String = s.chars().take(CHARS).collect();
                format!("{head:?}… ({} bytes)", s.len())
            }
            // Shape only: statistics would read every element.
            Value::Array(a) => format!("{}{:?}", a.dtype(), a.shape()),
            Value::List(l) => format!("a list of {} items", l.len()),
            Value::Map(m) => format!("a map of {} keys", m.len()),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Value {
    /// A short human form: scalars as themselves, arrays summarised.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Array(a) => {
                write!(f, "{}{:?}", a.dtype(), a.shape())?;
                if let Some(s) = a.stats() {
                    write!(
                        f,
                        " min {:.6e} max {:.6e} mean {:.6e}",
                        s.min, s.max, s.mean
                    )?;
                }
                Ok(())
            }
            Value::List(_) | Value::Map(_) => write!(f, "{}", self.to_json()),
        }
    }
}

// ------------------------------------------------------------ conversions

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

/// Unsigned counters (step numbers) are common; values beyond `i64::MAX`
/// saturate.
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(v as f64)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Bytes> for Value {
    fn from(v: Bytes) -> Self {
        Value::Bytes(v)
    }
}
impl From<NdArray> for Value {
    fn from(v: NdArray) -> Self {
        Value::Array(v)
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Self {
        Value::Null
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Map(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

/// A vector of numbers becomes a 1-D array, sharing the vector's memory.
impl<T: Element> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Self {
        let n = v.len();
        Value::Array(NdArray {
            dtype: T::DTYPE,
            shape: vec![n],
            data: T::into_bytes(v),
        })
    }
}

/// A slice of numbers becomes a 1-D array (one copy, into the shared buffer).
impl<T: Element> From<&[T]> for Value {
    fn from(v: &[T]) -> Self {
        Value::Array(NdArray {
            dtype: T::DTYPE,
            shape: vec![v.len()],
            data: T::slice_to_bytes(v),
        })
    }
}
impl<T: Element> From<&Vec<T>> for Value {
    fn from(v: &Vec<T>) -> Self {
        Value::from(v.as_slice())
    }
}
impl<T: Element, const N: usize> From<[T; N]> for Value {
    fn from(v: [T; N]) -> Self {
        Value::from(&v[..])
    }
}

/// JSON maps to Null, Bool, Int (integers that fit i64), Float, Str, List and
/// Map. A JSON list of numbers stays a List: use an array type for arrays.
impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::Str(s),
            J::Array(a) => Value::List(a.into_iter().map(Value::from).collect()),
            J::Object(o) => Value::Map(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect()),
        }
    }
}

/// Why a `Serialize` type could not become a `Value`.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert to an idict Value: {0}")]
pub struct SerializeError(#[from] serde_json::Error);

impl Value {
    /// Any `T: Serialize` (structs, enums, maps…), through its JSON form.
    pub fn from_serialize<T: serde::Serialize + ?Sized>(v: &T) -> Result<Value, SerializeError> {
        Ok(Value::from(serde_json::to_value(v)?))
    }
}

#[cfg(feature = "ndarray")]
mod ndarray_conv {
    use super::*;
    use ndarray::{ArrayBase, Data, Dimension};

    /// Any `ndarray` array of an element type becomes an NdArray (copied once,
    /// in row-major order, into the shared buffer).
    impl<S, D, T> From<&ArrayBase<S, D>> for Value
    where
        S: Data<Elem = T>,
        D: Dimension,
        T: Element,
    {
        fn from(a: &ArrayBase<S, D>) -> Self {
            let shape = a.shape().to_vec();
            let data = match a.as_slice() {
                Some(s) => T::slice_to_bytes(s),
                None => T::into_bytes(a.iter().copied().collect()),
            };
            Value::Array(NdArray {
                dtype: T::DTYPE,
                shape,
                data,
            })
        }
    }

    impl NdArray {
        /// The array as an `ndarray::ArrayD<f64>` (converted and copied).
        pub fn to_ndarray_f64(&self) -> ndarray::ArrayD<f64> {
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), self.to_f64_vec())
                .unwrap_or_else(|_| ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_of_f64_becomes_shared_array_without_copy() {
        let v = vec![1.0f64, 2.0, 3.0];
        let ptr = v.as_ptr() as *const u8;
        let Value::Array(a) = Value::from(v) else {
            panic!("not an array")
        };
        assert_eq!(
            a.bytes().as_ptr(),
            ptr,
            "the Vec's memory is shared, not copied"
        );
        assert_eq!(a.shape(), &[3]);
        assert_eq!(a.to_f64_vec(), vec![1.0, 2.0, 3.0]);
        let b = a.clone();
        assert_eq!(b.bytes().as_ptr(), ptr);
    }

    #[test]
    fn byte_length_must_match_shape_and_dtype() {
        let err = NdArray::from_bytes(DType::F64, vec![2, 2], Bytes::from(vec![0u8; 24]));
        assert!(matches!(
            err,
            Err(ArrayError::LengthMismatch {
                expected: 32,
                actual: 24,
                ..
            })
        ));
        let err = NdArray::from_bytes(DType::F64, vec![usize::MAX, 2], Bytes::new());
        assert!(matches!(err, Err(ArrayError::ShapeOverflow { .. })));
        assert!(NdArray::from_bytes(DType::U8, vec![0, 5], Bytes::new()).is_ok());
        // Empty, yet a shape no viewer can make: refused like any overflow.
        let err = NdArray::from_bytes(DType::U8, vec![0, 1 << 63], Bytes::new());
        assert!(matches!(err, Err(ArrayError::ShapeOverflow { .. })));
        let err = NdArray::from_bytes(DType::U8, vec![1; 33], Bytes::from(vec![0u8]));
        assert!(matches!(err, Err(ArrayError::TooManyDims { dims: 33 })));
        assert!(NdArray::from_bytes(DType::U8, vec![1; 32], Bytes::from(vec![0u8])).is_ok());
    }

    #[test]
    fn json_and_serialize_conversions() {
        let v = Value::from(serde_json::json!({"a": 1, "b": [true, 2.5, "x"], "c": null}));
        let Value::Map(m) = &v else { panic!() };
        assert_eq!(m["a"], Value::Int(1));
        assert_eq!(
            m["b"],
            Value::List(vec![Value::Bool(true), Value::Float(2.5), Value::from("x")])
        );
        assert_eq!(m["c"], Value::Null);
        #[derive(serde::Serialize)]
        struct P {
            x: f64,
            name: &'static str,
        }
        let p = Value::from_serialize(&P { x: 0.5, name: "p" }).unwrap();
        assert_eq!(p.to_json(), serde_json::json!({"x": 0.5, "name": "p"}));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(format_number(0.015), "0.015");
        assert_eq!(format_number(2.0), "2");
        assert_eq!(format_number(1.5500031e-5), "1.55e-5");
        assert_eq!(format_number(-3.0e9), "-3e9");
        assert_eq!(format_number(f64::NAN), "NaN");
    }

    #[test]
    fn arrays_to_json_are_nested_by_shape() {
        let v = Value::array(vec![1i32, 2, 3, 4, 5, 6], vec![2, 3]).unwrap();
        assert_eq!(v.to_json(), serde_json::json!([[1, 2, 3], [4, 5, 6]]));
        let s = v.as_array().unwrap().stats().unwrap();
        assert_eq!((s.min, s.max, s.mean), (1.0, 6.0, 3.5));
    }

    #[test]
    fn control_characters_are_escaped_for_terminals() {
        assert_eq!(escape_controls("heat"), "heat");
        assert_eq!(escape_controls("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
    }

    #[test]
    fn i64_arrays_to_json_keep_every_bit() {
        let big = vec![(1i64 << 53) + 1, i64::MIN, i64::MAX];
        let v = Value::array(big.clone(), vec![3]).unwrap();
        assert_eq!(v.to_json(), serde_json::json!(big));
    }

    #[cfg(feature = "ndarray")]
    #[test]
    fn ndarray_arrays_convert() {
        let a = ndarray::arr2(&[[1.0, 2.0], [3.0, 4.0]]);
        let v = Value::from(&a);
        let arr = v.as_array().unwrap();
        assert_eq!(arr.shape(), &[2, 2]);
        assert_eq!(
            arr.to_ndarray_f64().into_raw_vec_and_offset().0,
            vec![1.0, 2.0, 3.0, 4.0]
        );
    }
}
