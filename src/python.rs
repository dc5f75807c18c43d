//! The only module that knows about Python: argument adaptation and exception mapping.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

/// Accept the secret as `str` (UTF-8 bytes, as Plane keys the HMAC) or `bytes`.
fn secret_bytes(secret: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = secret.cast::<PyString>() {
        return Ok(s.to_str()?.as_bytes().to_vec());
    }
    if let Ok(b) = secret.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Err(pyo3::exceptions::PyTypeError::new_err("secret must be str or bytes"))
}

#[pyfunction]
#[pyo3(signature = (secret, body, signature))]
fn verify_signature(
    py: Python<'_>,
    secret: &Bound<'_, PyAny>,
    body: &[u8],
    signature: Option<&str>,
) -> PyResult<bool> {
    let key = secret_bytes(secret)?;
    let Some(sig) = signature else {
        return Ok(false);
    };
    // Large bodies: hash without holding the GIL.
    if body.len() > 64 * 1024 {
        let body = body.to_vec();
        let sig = sig.to_owned();
        return Ok(py.detach(move || crate::signature::verify(&key, &body, &sig)));
    }
    Ok(crate::signature::verify(&key, body, sig))
}

#[pyfunction]
fn sign_body(secret: &Bound<'_, PyAny>, body: &[u8]) -> PyResult<String> {
    Ok(crate::signature::sign(&secret_bytes(secret)?, body))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify_signature, m)?)?;
    m.add_function(wrap_pyfunction!(sign_body, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
