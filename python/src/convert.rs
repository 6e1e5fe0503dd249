//! Python values ⇄ idict [`Value`]s.
//!
//! Into a `Value`: None, bool, int (i64), float, str, bytes, numpy arrays of
//! the wire's dtypes (copied once, to C order), numpy scalars (as scalars, so
//! they get history), lists, tuples and dicts with str keys. Anything else is
//! a `TypeError` naming the key and the type; nothing is stored then, since
//! the whole value is converted before the map is touched.
//!
//! Out of a `Value`: Python objects, arrays as read-only numpy arrays that
//! share the value's buffer where its alignment allows (no copy).

use bytes::Bytes;
use idict::{DType, Element, NdArray, Value};
use numpy::ndarray::{ArrayViewD, IxDyn};
use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use std::collections::BTreeMap;

/// Nesting deeper than the wire carries is refused here, before it could
/// only fail later in a client (and a list that contains itself ends).
const MAX_DEPTH: usize = idict::wire::MAX_DEPTH;

/// Converts `obj`, the value for `key`, into a `Value`.
pub fn to_value(key: &str, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    // The common case first: a float is most of what a simulation publishes.
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    convert(key, obj, 0)
}

fn convert(key: &str, obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "{key}: nested more than {MAX_DEPTH} levels deep (or contains itself)"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // bool before int: bool is a subclass of int.
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return i.extract::<i64>().map(Value::Int).map_err(|_| {
            PyOverflowError::new_err(format!(
                "{key}: the int {} does not fit in 64 bits (idict ints are i64)",
                short_repr(obj)
            ))
        });
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::Str(s.to_cow()?.into_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Bytes(Bytes::from(b.to_vec())));
    }
    if let Ok(a) = obj.cast::<PyUntypedArray>() {
        return array_to_value(key, a).map(Value::Array);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for item in l.iter() {
            out.push(convert(key, &item, depth + 1)?);
        }
        return Ok(Value::List(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for item in t.iter() {
            out.push(convert(key, &item, depth + 1)?);
        }
        return Ok(Value::List(out));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut out = BTreeMap::new();
        for (k, v) in d.iter() {
            let Ok(k) = k.cast::<PyString>() else {
                return Err(PyTypeError::new_err(format!(
                    "{key}: dict keys must be str, not {}",
                    type_name(&k)
                )));
            };
            out.insert(k.to_cow()?.into_owned(), convert(key, &v, depth + 1)?);
        }
        return Ok(Value::Map(out));
    }
    if let Some(v) = numpy_scalar(key, obj)? {
        return Ok(v);
    }
    Err(PyTypeError::new_err(format!(
        "{key}: idict cannot hold a value of type {} (it holds None, bool, int, float, str, \
         bytes, numpy arrays of float64, float32, int64, int32, uint8 or bool, and lists and \
         dicts of these)",
        type_name(obj)
    )))
}

/// A numpy scalar (`np.float32(1.5)`, `np.int64(3)`, `np.bool_(True)`) as
/// the Python scalar it stands for; None if `obj` is not one.
fn numpy_scalar(key: &str, obj: &Bound<'_, PyAny>) -> PyResult<Option<Value>> {
    let py = obj.py();
    let [generic, accepted @ ..] = numpy_scalar_types(py)?;
    if !obj.is_instance(generic.bind(py))? {
        return Ok(None);
    }
    for t in accepted {
        if obj.is_instance(t.bind(py))? {
            let item = obj.call_method0("item")?;
            return convert(key, &item, 0).map(Some);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{key}: idict cannot hold a numpy {} scalar",
        type_name(obj)
    )))
}

/// numpy.generic, then the scalar types taken as Python scalars (looked up
/// once: a numpy scalar in a hot loop should not cost an import).
fn numpy_scalar_types(py: Python<'_>) -> PyResult<&[Py<PyAny>; 4]> {
    static TYPES: pyo3::sync::PyOnceLock<[Py<PyAny>; 4]> = pyo3::sync::PyOnceLock::new();
    TYPES.get_or_try_init(py, || {
        let np = py.import("numpy")?;
        Ok([
            np.getattr("generic")?.unbind(),
            np.getattr("bool_")?.unbind(),
            np.getattr("integer")?.unbind(),
            np.getattr("floating")?.unbind(),
        ])
    })
}

/// One copy of a numpy array's elements, in C order, into an `NdArray`.
fn array_to_value(key: &str, a: &Bound<'_, PyUntypedArray>) -> PyResult<NdArray> {
    let py = a.py();
    let shape = a.shape().to_vec();
    macro_rules! try_dtype {
        ($t:ty) => {
            if let Ok(typed) = a.cast::<PyArrayDyn<$t>>() {
                return typed_array::<$t>(key, typed, shape);
            }
        };
    }
    try_dtype!(f64);
    try_dtype!(f32);
    try_dtype!(i64);
    try_dtype!(i32);
    try_dtype!(u8);
    // numpy bools are bytes that may hold more than 0 or 1 (made by a view):
    // read as bytes, never as Rust bools, and stored as 0 or 1.
    if a.dtype().is_equiv_to(&numpy::dtype::<bool>(py)) {
        let bytes = a
            .call_method1("view", (numpy::dtype::<u8>(py),))?
            .cast_into::<PyArrayDyn<u8>>()?;
        let as_bytes = typed_array::<u8>(key, &bytes, shape.clone())?;
        let normalised: Vec<u8> = as_bytes.bytes().iter().map(|&b| u8::from(b != 0)).collect();
        return NdArray::from_bytes(DType::Bool, shape, normalised.into())
            .map_err(|e| PyValueError::new_err(format!("{key}: {e}")));
    }
    // A supported dtype in the other byte order ('>f8'): numpy swaps it into
    // the native one, then it is taken as above.
    let dtype = a.dtype();
    let native = dtype.call_method1("newbyteorder", ("=",))?;
    if !dtype.is_equiv_to(&native.cast_into::<numpy::PyArrayDescr>()?)
        && let Ok(swapped) = a
            .call_method1("astype", (dtype.call_method1("newbyteorder", ("=",))?,))?
            .cast_into::<PyUntypedArray>()
    {
        let native_dtype = swapped.dtype();
        let supported = [
            numpy::dtype::<f64>(py),
            numpy::dtype::<f32>(py),
            numpy::dtype::<i64>(py),
            numpy::dtype::<i32>(py),
        ];
        if supported.iter().any(|d| d.is_equiv_to(&native_dtype)) {
            return array_to_value(key, &swapped);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{key}: idict cannot hold a numpy array of dtype {} (it holds float64, float32, \
         int64, int32, uint8 and bool arrays)",
        dtype.str()?
    )))
}

fn typed_array<T: numpy::Element + Element>(
    key: &str,
    a: &Bound<'_, PyArrayDyn<T>>,
    shape: Vec<usize>,
) -> PyResult<NdArray> {
    let ro = a.try_readonly().map_err(|e| {
        PyValueError::new_err(format!("{key}: the array is being written elsewhere: {e}"))
    })?;
    // `as_slice` also takes a Fortran-ordered array, whose bytes are not in
    // the row-major order a Value promises: only C order is copied whole.
    let c_slice = if a.is_c_contiguous() {
        ro.as_slice().ok()
    } else {
        None
    };
    let bytes = match c_slice {
        // C-contiguous: one memcpy, into a Vec<T> so the buffer is aligned
        // for T and reads back without a copy.
        Some(slice) => T::into_bytes(slice.to_vec()),
        // Fortran order, strided or a view: gathered in C order.
        None => T::into_bytes(ro.as_array().iter().copied().collect()),
    };
    NdArray::from_bytes(T::DTYPE, shape, bytes)
        .map_err(|e| PyValueError::new_err(format!("{key}: {e}")))
}

/// Keeps an array's buffer alive for the numpy arrays that view it.
#[pyclass(frozen, module = "idict", name = "_ArrayBuffer")]
pub struct ArrayBuffer {
    _data: Bytes,
}

/// Converts a `Value` into a Python object.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(x) => PyFloat::new(py, *x).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::Array(a) => array_to_py(py, a)?,
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(m) => {
            let dict = PyDict::new(py);
            for (k, item) in m {
                dict.set_item(k, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A read-only numpy array of `a`, sharing its buffer when aligned.
pub fn array_to_py<'py>(py: Python<'py>, a: &NdArray) -> PyResult<Bound<'py, PyAny>> {
    match a.dtype() {
        DType::F64 => view::<f64>(py, a),
        DType::F32 => view::<f32>(py, a),
        DType::I64 => view::<i64>(py, a),
        DType::I32 => view::<i32>(py, a),
        DType::U8 => view::<u8>(py, a),
        // Viewed as bytes, then as numpy bools: numpy, not Rust, reads them,
        // so a byte other than 0 or 1 from a client is harmless.
        DType::Bool => view::<u8>(py, a)?.call_method1("view", (numpy::dtype::<bool>(py),)),
    }
}

fn view<'py, T: numpy::Element + le::FromLe>(
    py: Python<'py>,
    a: &NdArray,
) -> PyResult<Bound<'py, PyAny>> {
    let bytes = a.bytes();
    let shape = IxDyn(a.shape());
    let ptr = bytes.as_ptr();
    let out = if (ptr as usize).is_multiple_of(std::mem::align_of::<T>())
        && cfg!(target_endian = "little")
    {
        // SAFETY: the bytes are `a.len()` little-endian elements of `T` (an
        // NdArray checks its length against its shape), aligned for `T`, and
        // immutable (`Bytes` is never written); `ArrayBuffer` owns a clone of
        // them and is the numpy array's base, so they outlive it.
        let view = unsafe { ArrayViewD::<T>::from_shape_ptr(shape, ptr.cast::<T>()) };
        let owner = Bound::new(
            py,
            ArrayBuffer {
                _data: bytes.clone(),
            },
        )?;
        unsafe { PyArrayDyn::<T>::borrow_from_array(&view, owner.into_any()) }
    } else {
        // Unaligned (a buffer straight off the wire can be): one copy.
        let values: Vec<T> = if cfg!(target_endian = "little") {
            let mut v = Vec::<T>::with_capacity(a.len());
            // SAFETY: `v` has room for `a.len()` elements, which are exactly
            // the `bytes.len()` bytes copied (checked by NdArray); any bit
            // pattern is a valid T for these plain number types.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, v.as_mut_ptr().cast::<u8>(), bytes.len());
                v.set_len(a.len());
            }
            v
        } else {
            bytes
                .chunks_exact(std::mem::size_of::<T>())
                .map(T::from_le)
                .collect()
        };
        PyArray1::from_vec(py, values).reshape(a.shape())?
    };
    let out = out
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(e.to_string()))?
        .make_nonwriteable();
    Ok(out.as_any().clone())
}

/// Elements read from little-endian bytes (the copy for unaligned buffers).
mod le {
    pub trait FromLe: Copy {
        fn from_le(b: &[u8]) -> Self;
    }
    macro_rules! pod {
        ($t:ty) => {
            impl FromLe for $t {
                fn from_le(b: &[u8]) -> Self {
                    let mut a = [0u8; std::mem::size_of::<$t>()];
                    a.copy_from_slice(b);
                    <$t>::from_le_bytes(a)
                }
            }
        };
    }
    pod!(f64);
    pod!(f32);
    pod!(i64);
    pod!(i32);
    pod!(u8);
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let s = obj.repr().map(|r| r.to_string()).unwrap_or_default();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}
