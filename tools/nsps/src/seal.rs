//! `nsps exec` runs from a sealed copy of itself (runc's answer to CVE-2019-5736).
//!
//! Between its fork and its exec, the joined child runs nsps's code inside the container's
//! pid namespace. Not being dumpable keeps most containers out, but not one that holds
//! CAP_SYS_PTRACE over this process's user namespace (rootful, `--cap-add SYS_PTRACE`): it
//! could open `/proc/PID/exe` and, once nsps has exited, reopen it for writing, a writable
//! handle to the host's binary. Run from a sealed memfd, `/proc/PID/exe` is only that copy,
//! which nobody can write.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;

use anyhow::Context;
use common::{debug, Fatal};
use nix::errno::Errno;

/// MFD_EXEC (Linux 6.3): says the memfd is meant to be executed, where sysctls ask.
const MFD_EXEC: libc::c_uint = libc::MFD_EXEC;

const SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// Re-executes this process from a sealed copy of its binary, unless it already runs from one.
pub fn reexec() -> Result<(), Fatal> {
    let sealed = File::open("/proc/self/exe")
        .ok()
        .and_then(|exe| fcntl_seals(&exe).ok())
        .is_some_and(|seals| seals & SEALS == SEALS);
    if sealed {
        // fexecve named the process after the descriptor ("3"): give it its name back.
        let _ = nix::sys::prctl::set_name(c"nsps");
        return Ok(());
    }
    // Noted first: a successful step does not come back to report itself.
    debug::note("re-exec from a sealed copy of /proc/self/exe");
    let error = debug::step("re-exec from a sealed copy", || -> anyhow::Result<()> {
        let copy = sealed_copy()?;
        let args: Vec<CString> = std::env::args_os()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let env: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                CString::new(kv)
            })
            .collect::<Result<_, _>>()?;
        // The memfd is close-on-exec: fexecve of an ELF binary needs it only until the exec.
        nix::unistd::fexecve(copy.as_raw_fd(), &args, &env).context("unable to execute it")?;
        Ok(())
    });
    Err(Fatal::from(
        error
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("fexecve returned")),
    )
    .context("unable to run nsps from a sealed copy of itself")
    .with_hint(
        "nsps exec runs from a sealed memfd so that a container cannot reach its binary: the \
         binary must be readable and vm.memfd_noexec below 2",
    ))
}

fn sealed_copy() -> anyhow::Result<File> {
    let name = c"nsps";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid name; the result is a new fd owned below.
    let mut raw = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if raw < 0 && Errno::last() == Errno::EINVAL {
        // SAFETY: as above, for kernels before MFD_EXEC.
        raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    Errno::result(raw).context("unable to create a memfd")?;
    // SAFETY: `raw` is a fresh descriptor owned by nobody else.
    let mut copy = unsafe { File::from_raw_fd(raw) };
    let mut exe = File::open("/proc/self/exe").context("unable to open /proc/self/exe")?;
    std::io::copy(&mut exe, &mut copy).context("unable to copy /proc/self/exe")?;
    // SAFETY: F_ADD_SEALS on our own memfd.
    Errno::result(unsafe { libc::fcntl(copy.as_fd().as_raw_fd(), libc::F_ADD_SEALS, SEALS) })
        .context("unable to seal the copy")?;
    Ok(copy)
}

fn fcntl_seals(file: &File) -> Result<libc::c_int, Errno> {
    // SAFETY: F_GET_SEALS only reads the seals of the file behind the fd.
    Errno::result(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_copy_is_this_binary_and_nobody_can_write_it() {
        let mut copy = sealed_copy().unwrap();
        assert_eq!(fcntl_seals(&copy).unwrap() & SEALS, SEALS);
        let exe = std::fs::metadata("/proc/self/exe").unwrap();
        assert_eq!(copy.metadata().unwrap().len(), exe.len());
        let error = copy.write_all(b"x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        // Reopened through /proc (what a container would do with /proc/PID/exe): no write.
        let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
        let mut again = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        assert_eq!(
            again.write_all(b"x").unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn a_regular_binary_is_not_sealed() {
        let exe = File::open("/proc/self/exe").unwrap();
        assert!(fcntl_seals(&exe).is_err());
    }
}
