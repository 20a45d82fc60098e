//! Kubernetes protobuf request bodies (`k8s\0` + `runtime.Unknown` envelope) decoded into JSON, as the API
//! server does for `Content-Type: application/vnd.kubernetes.protobuf` on POST and PUT.
//!
//! Property: `decode` never panics; what it accepts is a JSON object naming its `apiVersion` and `kind`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(object) = gantry_protobuf::decode(data) else {
        return;
    };
    let map = object.as_object().expect("decode returns an object");
    assert!(map.get("apiVersion").is_some_and(|v| v.is_string()));
    assert!(map.get("kind").is_some_and(|v| v.is_string()));
    // The server re-encodes the object as the JSON body it hands to the REST engine.
    serde_json::to_vec(&object).expect("a decoded object encodes as JSON");
});
