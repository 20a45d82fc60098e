//! Field paths and sets of them, and their FieldsV1 spelling.

mod element;
mod fields_v1;
mod set;

pub use element::{PathElement, path_string};
pub use fields_v1::FieldsV1Error;
pub use set::FieldSet;
