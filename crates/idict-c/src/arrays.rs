//! Arrays from C: a dtype, a shape, bytes in row-major (C) or column-major
//! (Fortran) order. Stored row-major, copied once: column-major data is
//! transposed as it is copied, so clients see the array's true shape.

use crate::status::{Failure, IDICT_ERR_ARGUMENT, IDICT_ERR_NULL, Result};
use idict::{DType, NdArray, Value};
use std::ffi::{c_int, c_void};

/// Element types, as the wire has them.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_dtype {
    IDICT_F64 = 0,
    IDICT_F32 = 1,
    IDICT_I64 = 2,
    IDICT_I32 = 3,
    IDICT_U8 = 4,
    /// One byte per element, 0 or 1.
    IDICT_BOOL = 5,
}

/// How an array's elements are laid out.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum idict_order {
    /// The last index varies fastest (C).
    IDICT_ROW_MAJOR = 0,
    /// The first index varies fastest (Fortran).
    IDICT_COLUMN_MAJOR = 1,
}

fn dtype(code: c_int) -> Result<DType> {
    Ok(match code {
        0 => DType::F64,
        1 => DType::F32,
        2 => DType::I64,
        3 => DType::I32,
        4 => DType::U8,
        5 => DType::Bool,
        other => {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{other} is not an idict_dtype (0 to 5)"),
            ));
        }
    })
}

/// The array C describes, as a `Value`.
///
/// # Safety
/// `data` points to `nbytes` bytes and `shape` to `ndim` sizes (either may
/// be NULL when its count is 0).
pub unsafe fn array(
    dtype_code: c_int,
    data: *const c_void,
    nbytes: usize,
    shape: *const usize,
    ndim: usize,
    order: c_int,
) -> Result<Value> {
    let dtype = dtype(dtype_code)?;
    let column_major = match order {
        0 => false,
        1 => true,
        other => {
            return Err(Failure::new(
                IDICT_ERR_ARGUMENT,
                format!("{other} is not an idict_order (0: row-major, 1: column-major)"),
            ));
        }
    };
    if ndim > NdArray::MAX_DIMS {
        return Err(Failure::new(
            IDICT_ERR_ARGUMENT,
            format!("{ndim} dimensions: at most {}", NdArray::MAX_DIMS),
        ));
    }
    if (ndim > 0 && shape.is_null()) || (nbytes > 0 && data.is_null()) {
        return Err(Failure::new(IDICT_ERR_NULL, "shape or data is NULL"));
    }
    let shape: Vec<usize> = if ndim == 0 {
        Vec::new()
    } else {
        // SAFETY: `shape` points to `ndim` sizes (the contract).
        unsafe { std::slice::from_raw_parts(shape, ndim) }.to_vec()
    };
    // The byte count is checked against the shape before anything is read.
    let expected = shape
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize);
    if expected != Some(nbytes) {
        return Err(Failure::new(
            IDICT_ERR_ARGUMENT,
            match expected {
                Some(n) => format!(
                    "{nbytes} bytes for a {} array of shape {shape:?}: it takes {n}",
                    dtype.name()
                ),
                None => format!("shape {shape:?} overflows"),
            },
        ));
    }
    let bytes: &[u8] = if nbytes == 0 {
        &[]
    } else {
        // SAFETY: `data` points to `nbytes` bytes (the contract).
        unsafe { std::slice::from_raw_parts(data.cast::<u8>(), nbytes) }
    };
    let stored = if column_major && shape.len() > 1 {
        to_row_major(bytes, &shape, dtype.size())
    } else {
        bytes.to_vec()
    };
    NdArray::from_bytes(dtype, shape, stored.into())
        .map(Value::Array)
        .map_err(|e| Failure::new(IDICT_ERR_ARGUMENT, e.to_string()))
}

/// Column-major bytes copied into row-major order: the one copy.
fn to_row_major(src: &[u8], shape: &[usize], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    if src.is_empty() {
        return out;
    }
    // Column-major strides, in elements: the first index moves by 1.
    let mut strides = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        strides[k] = strides[k - 1] * shape[k - 1];
    }
    // Walk the row-major index (the last index fastest) and keep the
    // source offset with it.
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    let last = shape.len() - 1;
    loop {
        out.extend_from_slice(&src[offset * size..(offset + 1) * size]);
        let mut k = last;
        loop {
            index[k] += 1;
            offset += strides[k];
            if index[k] < shape[k] {
                break;
            }
            offset -= strides[k] * shape[k];
            index[k] = 0;
            if k == 0 {
                return out;
            }
            k -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_major_is_stored_with_its_true_shape() {
        // Fortran's a(2,3) = [[1,2,3],[4,5,6]] is stored 1,4,2,5,3,6.
        let fortran: Vec<u8> = [1u8, 4, 2, 5, 3, 6].to_vec();
        assert_eq!(to_row_major(&fortran, &[2, 3], 1), vec![1, 2, 3, 4, 5, 6]);
        // Three dimensions, 2-byte elements.
        let shape = [2, 3, 4];
        let n: usize = shape.iter().product();
        let col: Vec<u8> = (0..n)
            .flat_map(|i| {
                // Element (a, b, c) at column-major position a + 2b + 6c holds
                // its row-major position 12a + 4b + c.
                let (a, b, c) = (i % 2, (i / 2) % 3, i / 6);
                let row = (12 * a + 4 * b + c) as u16;
                row.to_le_bytes()
            })
            .collect();
        let row = to_row_major(&col, &shape, 2);
        let values: Vec<u16> = row
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, (0..n as u16).collect::<Vec<_>>());
    }
}
