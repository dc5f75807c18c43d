//! Python values to core values and back: JSON bodies, `params=`/`form=` pairs, numeric settings,
//! and core errors as `plane_connector` exceptions (defined in Python, `_errors.py`).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use pyo3::Borrowed;
use serde_json::{Map, Number, Value};

use crate::client::check_count;
use crate::errors::CoreError;

/// Converts a core error into the matching `plane_connector` exception.
pub(super) fn to_pyerr(py: Python<'_>, err: CoreError, pending: Option<PyErr>) -> PyErr {
    if let (CoreError::External(_), Some(original)) = (&err, pending) {
        return original;
    }
    match build_exception(py, &err) {
        Ok(e) => e,
        // The exceptions module failed to import: still raise something readable.
        Err(import_err) => import_err,
    }
}

fn build_exception(py: Python<'_>, err: &CoreError) -> PyResult<PyErr> {
    let module = py.import("plane_connector._errors")?;
    let text = err.to_string();
    let class_name = match err {
        CoreError::Config(_) => "ConfigError",
        CoreError::Transport { timeout: true, .. } => "TimeoutError",
        CoreError::Transport { .. } => "TransportError",
        CoreError::Pagination(_) => "PaginationError",
        CoreError::External(_) => "PlaneError",
        CoreError::Http { status, .. } => match status {
            401 | 403 => "AuthError",
            404 => "NotFoundError",
            409 => "ConflictError",
            429 => "RateLimitError",
            _ => "HTTPError",
        },
    };
    let class = module.getattr(class_name)?;
    let instance = match err {
        CoreError::Http {
            status,
            message,
            body,
            retry_after,
            existing_id,
            ..
        } => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("status", *status)?;
            kwargs.set_item("body", body)?;
            kwargs.set_item("message", message)?;
            kwargs.set_item("retry_after", *retry_after)?;
            kwargs.set_item("existing_id", existing_id.as_deref())?;
            class.call((text,), Some(&kwargs))?
        }
        _ => class.call1((text,))?,
    };
    Ok(PyErr::from_value(instance))
}

/// A decoded JSON answer on its way to Python.
pub(super) struct JsonOut(pub(super) Option<Value>);

impl<'py> IntoPyObject<'py> for JsonOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        match self.0 {
            Some(v) => json_to_py(py, &v),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

pub(super) fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

pub(super) fn py_to_json(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > 64 {
        return Err(PyValueError::new_err("json= is nested too deeply"));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err("integer too large for JSON"));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err("NaN and infinity are not valid JSON"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_str()?.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| PyTypeError::new_err("json= dict keys must be str"))?
                .to_str()?
                .to_string();
            map.insert(key, py_to_json(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(py_to_json(&item?, depth + 1)?);
        }
        return Ok(Value::Array(items));
    }
    Err(PyTypeError::new_err(format!(
        "json= values must be dict, list, str, int, float, bool or None, not {}",
        obj.get_type().name()?
    )))
}

/// `params=` dict to query pairs: None is skipped, bools are `true`/`false`, lists are
/// comma-joined (Plane's `fields=` and `expand=` take comma lists).
pub(super) fn params_to_pairs(
    arg: &str,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<(String, String)>> {
    let Some(params) = params.filter(|p| !p.is_none()) else {
        return Ok(Vec::new());
    };
    let dict = params
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("{arg}= must be a dict")))?;
    let mut out = Vec::new();
    for (k, v) in dict.iter() {
        let key: String = k
            .extract()
            .map_err(|_| PyTypeError::new_err(format!("{arg}= keys must be str")))?;
        if v.is_none() {
            continue;
        }
        let value = if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
            let mut parts = Vec::new();
            for item in v.try_iter()? {
                parts.push(param_scalar(arg, &key, &item?)?);
            }
            parts.join(",")
        } else {
            param_scalar(arg, &key, &v)?
        };
        out.push((key, value));
    }
    Ok(out)
}

fn param_scalar(arg: &str, key: &str, v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.to_string());
    }
    if v.is_instance_of::<PyString>()
        || v.is_instance_of::<PyInt>()
        || v.is_instance_of::<PyFloat>()
    {
        return Ok(v.str()?.to_str()?.to_string());
    }
    Err(PyTypeError::new_err(format!(
        "{arg}[{key:?}] must be str, int, float, bool, None or a list of those"
    )))
}

pub(super) fn form_to_pairs(
    form: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Vec<(String, String)>>> {
    match form.filter(|f| !f.is_none()) {
        None => Ok(None),
        Some(f) => params_to_pairs("form", Some(f)).map(Some),
    }
}

/// A numeric argument as Python gave it. It is checked, with its name, where it is used, so a
/// wrong type, NaN, an infinity or an int too big for any setting is a `ConfigError` (never a
/// `TypeError`, `OverflowError` or a Rust panic from a `Duration` that cannot hold it).
#[derive(Debug, Clone)]
pub(super) enum PyNumber {
    Float(f64),
    Int(i128),
    /// An int beyond i128: too big for every setting.
    HugeInt,
    /// Not a number: the type's name.
    Other(String),
}

impl<'a, 'py> FromPyObject<'a, 'py> for PyNumber {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyBool>() {
            // True is an int to Python, but `timeout=True` is a mistake, not one second.
            return Ok(PyNumber::Other("bool".into()));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(obj
                .extract::<i128>()
                .map_or(PyNumber::HugeInt, PyNumber::Int));
        }
        if let Ok(f) = obj.extract::<f64>() {
            return Ok(PyNumber::Float(f));
        }
        let type_name = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        Ok(PyNumber::Other(type_name))
    }
}

impl PyNumber {
    /// Seconds: an int or a float; the range is checked by `ClientConfig::validate`.
    pub(super) fn seconds(&self, name: &str) -> Result<f64, CoreError> {
        match self {
            PyNumber::Float(f) => Ok(*f),
            PyNumber::Int(i) => Ok(*i as f64),
            PyNumber::HugeInt => Ok(f64::INFINITY),
            PyNumber::Other(t) => Err(CoreError::Config(format!(
                "{name} must be a number of seconds, not {t}"
            ))),
        }
    }

    /// A whole number within `range`.
    pub(super) fn count(&self, name: &str, range: (u32, u32)) -> Result<u32, CoreError> {
        match self {
            PyNumber::Int(i) => check_count(name, *i, range),
            PyNumber::HugeInt => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, got a far bigger one",
                range.0, range.1
            ))),
            PyNumber::Float(_) => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, not a float",
                range.0, range.1
            ))),
            PyNumber::Other(t) => Err(CoreError::Config(format!(
                "{name} must be a whole number from {} to {}, not {t}",
                range.0, range.1
            ))),
        }
    }
}
