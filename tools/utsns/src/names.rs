//! Hostname and domainname validation (RFC 1123) and setting the domainname.

use common::{debug, Fatal};

/// The kernel's limit for both names (`__NEW_UTS_LEN`).
const MAX_LEN: usize = 64;

/// A hostname: 1 to 64 bytes of dot-separated RFC 1123 labels (letters, digits, hyphens; a
/// label neither starts nor ends with a hyphen and is at most 63 bytes).
pub fn validate_hostname(name: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(name);
    if name.is_empty() {
        return Err("the hostname is empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "the hostname '{shown}' is {} bytes long, the limit is {MAX_LEN}",
            name.len()
        ));
    }
    for label in name.split(|&b| b == b'.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-');
        if !ok {
            return Err(format!(
                "'{shown}' is not a valid hostname: use letters, digits and hyphens in dot-separated labels (RFC 1123)"
            ));
        }
    }
    Ok(())
}

/// A NIS domainname: 1 to 64 printable bytes without whitespace.
pub fn validate_domainname(name: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(name);
    if name.is_empty() {
        return Err("the domainname is empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "the domainname '{shown}' is {} bytes long, the limit is {MAX_LEN}",
            name.len()
        ));
    }
    if !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "'{shown}' is not a valid domainname: use printable characters without spaces"
        ));
    }
    Ok(())
}

pub(crate) fn parse_hostname(text: &str) -> Result<String, String> {
    validate_hostname(text.as_bytes()).map(|()| text.to_owned())
}

pub(crate) fn parse_domainname(text: &str) -> Result<String, String> {
    validate_domainname(text.as_bytes()).map(|()| text.to_owned())
}

/// `setdomainname(2)`, which nix does not wrap.
pub(crate) fn set_domainname(name: &str) -> Result<(), Fatal> {
    let bytes = name.as_bytes();
    debug::step("setdomainname", || {
        // SAFETY: the pointer and length describe `bytes`, which outlives the call.
        let rc = unsafe { libc::setdomainname(bytes.as_ptr().cast(), bytes.len()) };
        nix::errno::Errno::result(rc).map(drop)
    })
    .map_err(|e| Fatal::from(e).context("unable to set the domainname"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_rfc_1123() {
        for good in ["web1", "a", "web-1.example.org", "1abc", &"a".repeat(63)] {
            assert!(validate_hostname(good.as_bytes()).is_ok(), "{good}");
        }
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(24));
        assert_eq!(long.len(), 65);
        for bad in [
            "",
            "-web",
            "web-",
            "we b",
            "web_1",
            "a..b",
            ".a",
            "a.",
            &long,
            &"a".repeat(64),
            "wéb",
        ] {
            assert!(validate_hostname(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(validate_hostname(b"\xff").is_err());
    }

    #[test]
    fn domainnames_are_printable_and_short() {
        assert!(validate_domainname(b"example.org").is_ok());
        assert!(validate_domainname(b"").is_err());
        assert!(validate_domainname(b"a b").is_err());
        assert!(validate_domainname("x".repeat(65).as_bytes()).is_err());
    }
}
