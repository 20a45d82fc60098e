//! Input layout shared by the patch targets: `<document JSON> NUL <patch JSON>`.

use serde_json::Value;

/// Splits at the first NUL byte (which valid JSON text never contains) into the document and the patch,
/// both parsed as JSON. Without a NUL the whole input is the patch, applied to `{}`. `None` when either
/// part is not JSON.
pub fn document_and_patch(data: &[u8]) -> Option<(Value, Value)> {
    let (doc, patch) = match data.iter().position(|&b| b == 0) {
        Some(i) => (serde_json::from_slice(&data[..i]).ok()?, &data[i + 1..]),
        None => (Value::Object(Default::default()), data),
    };
    Some((doc, serde_json::from_slice(patch).ok()?))
}
