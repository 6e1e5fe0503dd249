//! `with d.lock() as s:`: the working map held by a Python thread (see the
//! parent module on the GIL and the map's lock).

use super::Run;
use crate::convert::{to_py, to_value};
use idict::{DictGuard, IDict, Value};
use pyo3::exceptions::{PyKeyError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

self_cell::self_cell!(
    /// The map's guard together with the handle it borrows from.
    struct Held {
        owner: IDict,
        #[covariant]
        dependent: DictGuard,
    }
);

/// Exclusive access to the working map, from `with d.lock() as s:`.
/// Nothing a client sees changes until notify_update(), called after the
/// block. Arrays are copied once when set; reading one gives a read-only
/// numpy array. Belongs to the thread that took it; if the garbage
/// collector finalises it on another thread, that still releases the map.
#[pyclass(module = "idict", mapping)]
pub struct Locked {
    held: Option<Held>,
    lockers: Arc<AtomicUsize>,
    owner: std::thread::ThreadId,
}

impl Locked {
    pub(super) fn acquire(py: Python<'_>, run: &Run) -> PyResult<Locked> {
        // Counted before waiting: a thread that sees no locker may take the
        // map with the GIL held, so it must see this one, even still waiting.
        let others = run.lockers.fetch_add(1, Ordering::AcqRel);
        let held = Held::new(run.idict.clone(), |d| {
            if others == 0 {
                d.lock()
            } else {
                py.detach(|| d.lock())
            }
        });
        Ok(Locked {
            held: Some(held),
            lockers: run.lockers.clone(),
            owner: std::thread::current().id(),
        })
    }

    fn guard(&mut self) -> PyResult<&mut Held> {
        // The core knows the map's holder by thread: another thread using
        // this guard would see its own calls treated as not holding it.
        if std::thread::current().id() != self.owner {
            return Err(PyRuntimeError::new_err(
                "a lock() belongs to the thread that took it",
            ));
        }
        self.held.as_mut().ok_or_else(|| {
            PyRuntimeError::new_err("the lock was released (its with block has ended)")
        })
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if self.held.take().is_some() {
            self.lockers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[pymethods]
impl Locked {
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.release();
    }

    /// Releases the lock (what leaving the with block does).
    fn release(&mut self) {
        if self.held.take().is_some() {
            self.lockers.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn __getitem__<'py>(&mut self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let value = self.guard()?.borrow_dependent().get(&key).cloned();
        match value {
            Some(v) => to_py(py, &v),
            None => Err(PyKeyError::new_err(key.to_owned())),
        }
    }

    fn __setitem__(&mut self, key: String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let value = to_value(&key, value)?;
        let old = self
            .guard()?
            .with_dependent_mut(|_, g| g.insert(&key, value));
        drop(old);
        Ok(())
    }

    fn __delitem__(&mut self, key: String) -> PyResult<()> {
        match self.guard()?.with_dependent_mut(|_, g| g.remove(&key)) {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key.to_owned())),
        }
    }

    fn __contains__(&mut self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(key) = key.extract::<String>() else {
            return Ok(false);
        };
        Ok(self.guard()?.borrow_dependent().contains_key(&key))
    }

    fn __len__(&mut self) -> PyResult<usize> {
        Ok(self.guard()?.borrow_dependent().len())
    }

    fn __iter__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PyList::new(py, self.keys()?)?
            .try_iter()
            .map(Bound::into_any)
    }

    /// The keys, sorted.
    fn keys(&mut self) -> PyResult<Vec<String>> {
        Ok(self
            .guard()?
            .borrow_dependent()
            .keys()
            .map(str::to_owned)
            .collect())
    }

    fn values<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let values: Vec<Value> = self
            .guard()?
            .borrow_dependent()
            .iter()
            .map(|(_, v)| v.clone())
            .collect();
        values.iter().map(|v| to_py(py, v)).collect()
    }

    fn items<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let entries: Vec<(String, Value)> = self
            .guard()?
            .borrow_dependent()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        entries
            .into_iter()
            .map(|(k, v)| Ok((k, to_py(py, &v)?)))
            .collect()
    }

    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &mut self,
        py: Python<'py>,
        key: String,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.guard()?.borrow_dependent().get(&key).cloned() {
            Some(v) => to_py(py, &v),
            None => Ok(default.unwrap_or_else(|| py.None().into_bound(py))),
        }
    }

    /// Removes `key` and returns its value (or `default`).
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        &mut self,
        py: Python<'py>,
        key: String,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.guard()?.with_dependent_mut(|_, g| g.remove(&key)) {
            Some(v) => to_py(py, &v),
            None if !default.is_empty() => default.get_item(0),
            None => Err(PyKeyError::new_err(key.to_owned())),
        }
    }

    /// Sets every key of `other` (a mapping, or (key, value) pairs) and of
    /// `kwargs`; all are converted first, so a bad value changes nothing.
    #[pyo3(signature = (other=None, **kwargs))]
    fn update(
        &mut self,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<()> {
        let mut values = Vec::new();
        let mut take = |pairs: Bound<'_, PyAny>| -> PyResult<()> {
            for pair in pairs.try_iter()? {
                let (k, v): (String, Bound<'_, PyAny>) = pair?.extract()?;
                let value = to_value(&k, &v)?;
                values.push((k, value));
            }
            Ok(())
        };
        if let Some(other) = other {
            if other.hasattr("keys")? {
                // A mapping: its keys, then each value (as dict.update does).
                let pairs = PyList::empty(other.py());
                for k in other.call_method0("keys")?.try_iter()? {
                    let k = k?;
                    let v = other.get_item(&k)?;
                    pairs.append((k, v))?;
                }
                take(pairs.into_any())?;
            } else {
                take(other.clone())?;
            }
        }
        if let Some(kwargs) = kwargs {
            take(kwargs.call_method0("items")?)?;
        }
        self.guard()?.with_dependent_mut(|_, g| {
            for (k, v) in values {
                g.insert(k, v);
            }
        });
        Ok(())
    }

    /// Removes every key.
    fn clear(&mut self) -> PyResult<()> {
        self.guard()?.with_dependent_mut(|_, g| g.clear());
        Ok(())
    }

    /// `s[key]` if present, else sets it to `default` and returns that.
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        &mut self,
        py: Python<'py>,
        key: String,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(v) = self.guard()?.borrow_dependent().get(&key).cloned() {
            return to_py(py, &v);
        }
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let value = to_value(&key, &default)?;
        self.guard()?
            .with_dependent_mut(|_, g| g.insert(&key, value));
        Ok(default)
    }

    /// Removes some (key, value) pair and returns it; KeyError if empty.
    fn popitem<'py>(&mut self, py: Python<'py>) -> PyResult<(String, Bound<'py, PyAny>)> {
        let key = self
            .guard()?
            .borrow_dependent()
            .keys()
            .last()
            .map(str::to_owned);
        let Some(key) = key else {
            return Err(PyKeyError::new_err("popitem(): the map is empty"));
        };
        let value = self.guard()?.with_dependent_mut(|_, g| g.remove(&key));
        Ok((key, to_py(py, &value.unwrap_or_default())?))
    }

    /// Equal to a mapping with the same items (as a dict compares).
    fn __eq__(&mut self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if !other.hasattr("keys")? {
            return Ok(false);
        }
        let mine = pyo3::types::PyDict::new(py);
        for (k, v) in self.items(py)? {
            mine.set_item(k, v)?;
        }
        let theirs = pyo3::types::PyDict::new(py);
        for k in other.call_method0("keys")?.try_iter()? {
            let k = k?;
            theirs.set_item(&k, other.get_item(&k)?)?;
        }
        // numpy arrays compare elementwise: compare their items one by one.
        if mine.len() != theirs.len() {
            return Ok(false);
        }
        for (k, v) in mine.iter() {
            let Some(w) = theirs.get_item(&k)? else {
                return Ok(false);
            };
            let same = py
                .import("numpy")?
                .call_method1("array_equal", (&v, &w))
                .and_then(|r| r.is_truthy())
                .or_else(|_| v.eq(&w))?;
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn __repr__(&mut self) -> String {
        match self.held.as_ref() {
            Some(h) => format!("Locked({} keys)", h.borrow_dependent().len()),
            None => "Locked(released)".to_owned(),
        }
    }
}
