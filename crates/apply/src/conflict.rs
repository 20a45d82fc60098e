//! Apply conflicts and how upstream words them: `Apply failed with 1 conflict: conflict with "mgr" using
//! apps/v1: .spec.replicas`, a 409 whose causes are `FieldManagerConflict`s.

use std::fmt;

use gantry_api::ApiError;
use gantry_api::status::{StatusCause, StatusDetails};

use crate::fieldpath::{PathElement, path_string};
use crate::managed::Operation;
use crate::value::go_quote;

/// A field the applier would change that another manager owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub subresource: String,
    pub path: Vec<PathElement>,
}

impl Conflict {
    /// The path as upstream prints it (`.spec.replicas`).
    pub fn field(&self) -> String {
        path_string(&self.path)
    }

    /// The manager as upstream names it: `"mgr"`, `"mgr" with subresource "status"`, and for updaters
    /// `… using apps/v1`.
    pub fn manager_description(&self) -> String {
        let mut out = go_quote(&self.manager);
        if !self.subresource.is_empty() {
            out.push_str(" with subresource ");
            out.push_str(&go_quote(&self.subresource));
        }
        if self.operation == Operation::Update {
            out.push_str(" using ");
            out.push_str(&self.api_version);
        }
        out
    }

    fn sort_key(&self) -> (&str, Operation, &str, &str) {
        (
            &self.manager,
            self.operation,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// The conflicts of one apply, by manager, paths in set order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conflicts(pub Vec<Conflict>);

/// `metav1.CauseTypeFieldManagerConflict`.
pub const FIELD_MANAGER_CONFLICT: &str = "FieldManagerConflict";

impl Conflicts {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Upstream's message: one conflict on one line, several grouped by manager (sorted).
    pub fn message(&self) -> String {
        if let [only] = self.0.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager_description(),
                only.field()
            );
        }
        let mut sorted: Vec<&Conflict> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let mut lines = Vec::new();
        let mut current: Option<(&str, Operation, &str, &str)> = None;
        for conflict in sorted {
            if current != Some(conflict.sort_key()) {
                current = Some(conflict.sort_key());
                lines.push(format!(
                    "conflicts with {}:",
                    conflict.manager_description()
                ));
            }
            lines.push(format!("- {}", conflict.field()));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The `Status` causes, one per conflict, in order.
    pub fn causes(&self) -> Vec<StatusCause> {
        self.0
            .iter()
            .map(|c| StatusCause {
                reason: FIELD_MANAGER_CONFLICT.to_owned(),
                message: format!("conflict with {}", c.manager_description()),
                field: c.field(),
            })
            .collect()
    }

    /// The 409 upstream answers with (`errors.NewApplyConflict`).
    pub fn to_api_error(&self) -> ApiError {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: self.message(),
            details: Some(Box::new(StatusDetails {
                causes: self.causes(),
                ..StatusDetails::default()
            })),
        }
    }
}

impl fmt::Display for Conflicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Conflicts {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conflict(manager: &str, operation: Operation, path: &[&str]) -> Conflict {
        Conflict {
            manager: manager.to_owned(),
            operation,
            api_version: "apps/v1".to_owned(),
            subresource: String::new(),
            path: path.iter().map(|p| PathElement::field(p)).collect(),
        }
    }

    #[test]
    fn messages_match_upstream() {
        let one = Conflicts(vec![conflict(
            "kubectl-client-side-apply",
            Operation::Update,
            &["spec", "replicas"],
        )]);
        assert_eq!(
            one.message(),
            r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        let error = one.to_api_error();
        assert_eq!(error.code, 409);
        let status = error.to_status();
        assert_eq!(status["reason"], "Conflict");
        assert_eq!(
            status["details"]["causes"],
            json!([{"reason": "FieldManagerConflict",
                    "message": "conflict with \"kubectl-client-side-apply\" using apps/v1",
                    "field": ".spec.replicas"}])
        );
        let many = Conflicts(vec![
            conflict("b", Operation::Apply, &["spec", "replicas"]),
            conflict("a", Operation::Update, &["data", "x"]),
            conflict("b", Operation::Apply, &["spec", "paused"]),
        ]);
        assert_eq!(
            many.message(),
            "Apply failed with 3 conflicts: conflicts with \"a\" using apps/v1:\n- .data.x\nconflicts with \"b\":\n- .spec.replicas\n- .spec.paused"
        );
        let mut status = conflict("kubelet", Operation::Update, &["status"]);
        status.subresource = "status".to_owned();
        assert_eq!(
            status.manager_description(),
            r#""kubelet" with subresource "status" using apps/v1"#
        );
    }
}
