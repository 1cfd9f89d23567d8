//! What a test needs from the machine, checked once here: each returns whether the test can
//! run, and under `CI` a missing need fails the test ([`crate::require`]).

use std::path::Path;

use crate::{have, is_root, require, rootless_userns_works};

/// Root.
pub fn root() -> bool {
    require(is_root(), "root")
}

/// Root with the tools of a throwaway host network namespace (`ip`, `nft`).
pub fn network() -> bool {
    require(
        is_root(),
        "root (network tests build a throwaway host namespace)",
    ) && require(have("ip"), "ip (iproute2)")
        && require(have("nft"), "nft (nftables)")
}

/// A throwaway host and a busybox root to attack from: [`network`] and [`busybox`].
pub fn lab() -> bool {
    network() && busybox()
}

/// Debian's static busybox, for the roots the tests build.
pub fn busybox() -> bool {
    require(
        Path::new("/bin/busybox").exists(),
        "/bin/busybox (Debian package busybox-static)",
    )
}

/// Chains as uid 65534: root to switch to it, newuidmap/newgidmap, unprivileged userns.
pub fn rootless() -> bool {
    require(is_root(), "root (to switch to uid 65534)")
        && require(
            have("newuidmap") && have("newgidmap"),
            "newuidmap/newgidmap (uidmap)",
        )
        && require(
            rootless_userns_works(),
            "unprivileged user namespaces for uid 65534",
        )
}
