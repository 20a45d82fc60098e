//! Which entry of a multi-platform index this node runs: linux and the host's architecture.

use oci_spec::image::Descriptor;

/// The host's architecture in Go's names (`amd64`, `arm64`, …), as image platforms spell it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The first linux entry for the host architecture; on arm64 a `v8` or unspecified variant.
pub(crate) fn select(manifests: &[Descriptor]) -> Option<&Descriptor> {
    manifests.iter().find(|d| {
        d.platform().as_ref().is_some_and(|p| {
            matches_host(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        })
    })
}

/// Whether an index entry's platform, when it has one, is not this host's.
pub(crate) fn is_foreign(descriptor: &Descriptor) -> bool {
    descriptor.platform().as_ref().is_some_and(|p| {
        !matches_host(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    })
}

fn matches_host(os: &str, arch: &str, variant: Option<&str>) -> bool {
    os == "linux"
        && arch == host_architecture()
        && (arch != "arm64" || matches!(variant, None | Some("v8")))
}

/// Human-readable list of the platforms an index offers, for errors.
pub(crate) fn offered(manifests: &[Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| match p.variant() {
            Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
            None => format!("{}/{}", p.os(), p.architecture()),
        })
        .collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}
