//! Label selectors (`?labelSelector=`, `LabelSelector` objects) and field selectors (`?fieldSelector=`).
//!
//! Properties: nothing panics; a parsed label selector prints to a string that parses back to an equal
//! selector; a parsed field selector prints to a string that parses back to the same set of terms; field
//! selector value escaping round-trips any string.
#![no_main]

use gantry_api::fields::{self, FieldSelector};
use gantry_api::labels::Selector;
use libfuzzer_sys::fuzz_target;

/// A field selector's terms as a sorted list: `parse` orders terms by their text as written, so
/// `a==z,a=b` and its printed form `a=z,a=b` hold the same terms in different orders.
fn terms(s: &FieldSelector) -> Vec<String> {
    let mut terms: Vec<String> = s.requirements().iter().map(ToString::to_string).collect();
    terms.sort();
    terms
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);

    if let Ok(selector) = Selector::parse(&input) {
        let printed = selector.to_string();
        match Selector::parse(&printed) {
            Ok(again) => assert_eq!(
                again, selector,
                "label selector {input:?} printed as {printed:?} parses to a different selector"
            ),
            Err(e) => panic!("label selector {input:?} printed as {printed:?} does not parse: {e}"),
        }
        // Matching must not panic whatever the labels.
        let labels: std::collections::BTreeMap<String, String> = selector
            .requirements()
            .iter()
            .map(|r| {
                (
                    r.key().to_owned(),
                    r.values().first().cloned().unwrap_or_default(),
                )
            })
            .collect();
        let _ = selector.matches(&labels);
    }

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(selector) = Selector::from_label_selector(&value) {
            let _ = selector.matches_object(&value);
            let _ = selector.to_string();
        }
    }

    if let Ok(selector) = FieldSelector::parse(&input) {
        let printed = selector.to_string();
        match FieldSelector::parse(&printed) {
            Ok(again) => assert_eq!(
                terms(&again),
                terms(&selector),
                "field selector {input:?} printed as {printed:?} parses to different terms"
            ),
            Err(e) => panic!("field selector {input:?} printed as {printed:?} does not parse: {e}"),
        }
        let _ = selector.matches_object(&serde_json::json!({"metadata": {"name": input}}));
    }

    let escaped = fields::escape_value(&input);
    match fields::unescape_value(&escaped) {
        Ok(back) => assert_eq!(back, input, "escape_value does not round-trip"),
        Err(e) => panic!("escape_value({input:?}) = {escaped:?} does not unescape: {e}"),
    }
});
