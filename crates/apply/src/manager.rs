//! The field manager of writes that name none.

/// Upstream's limit on field manager names (`FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The manager of a write without `fieldManager`: the User-Agent up to its first `/`, printable
/// characters only, at most 128 bytes (`kubectl/v1.33.0 (linux/amd64) kubernetes/abc` → `kubectl`).
/// Empty without a User-Agent, as upstream.
pub fn default_manager(user_agent: Option<&str>) -> String {
    let agent = user_agent.unwrap_or_default();
    let prefix = agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars() {
        // Go's unicode.IsPrint: graphic characters and the ASCII space.
        let printable = !c.is_control() && (c == ' ' || !c.is_whitespace());
        if !printable {
            continue;
        }
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_user_agents() {
        assert_eq!(
            default_manager(Some("kubectl/v1.33.0 (linux/amd64) kubernetes/8adc0f0")),
            "kubectl"
        );
        assert_eq!(
            default_manager(Some(
                "kube-controller-manager/v1.33.0 (linux/amd64) kubernetes/8adc0f0/system:serviceaccount:kube-system:deployment-controller"
            )),
            "kube-controller-manager"
        );
        assert_eq!(default_manager(Some("curl")), "curl");
        assert_eq!(default_manager(Some("a\tb\u{7}c/x")), "abc");
        assert_eq!(default_manager(None), "");
        assert_eq!(default_manager(Some(&"x".repeat(300))).len(), 128);
        assert_eq!(default_manager(Some(&"é".repeat(100))).len(), 128);
    }
}
