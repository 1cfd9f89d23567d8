//! Gives back the memory a long-lived process of ours carries from the link it was forked
//! from (the chain's supervisor, pidns's init: DESIGN.md "Processes per chain"). A fork keeps
//! every page the setup touched: the free heap, the deep stack of the setup's calls, and the
//! pages of the binary's code it ran. None of it is needed again while the process idles.
//!
//! [`plan`] reads `/proc/self/smaps` (so it must run while `/proc` is reachable, before an
//! init empties its root); [`Plan::apply`] then allocates nothing and touches no file:
//! `malloc_trim` returns the free heap, `MADV_DONTNEED` drops the stack below the caller's
//! frame and the read-only pages of files (the binary's code and constants). Such pages are
//! only unmapped from this process: a later use reads them again from the page cache (code)
//! or gets a zeroed page (stack below the stack pointer, which holds nothing). A read-only
//! mapping with anonymous pages (relocated data made read-only after startup) keeps them:
//! dropping those would bring back the file's unrelocated bytes.

/// At most this many mappings are dropped (a static binary has three or four read-only ones).
const MAX: usize = 32;

/// Stack kept below the frame of [`Plan::apply`], for the calls it makes.
const STACK_MARGIN: usize = 16 * 1024;

/// What [`Plan::apply`] drops, read from `/proc/self/smaps`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    files: [(usize, usize); MAX],
    len: usize,
    stack: Option<(usize, usize)>,
}

/// Reads this process's mappings. An unreadable `/proc` gives a plan that only trims the heap.
/// A process that sheds again and again (the supervisor, after each event) reads it once and
/// keeps the plan: the binary's mappings and the stack's place do not change.
pub fn plan() -> Plan {
    let mut plan = Plan::trim_only();
    if let Ok(smaps) = crate::procfs::read("/proc/self/smaps") {
        plan.read(&smaps);
    }
    plan
}

impl Plan {
    /// A plan that only trims the heap (before the mappings are read).
    pub fn trim_only() -> Plan {
        Plan {
            files: [(0, 0); MAX],
            len: 0,
            stack: None,
        }
    }

    fn read(&mut self, smaps: &str) {
        // The mapping being read, if it may be dropped once its Anonymous line says none.
        let mut candidate: Option<(usize, usize)> = None;
        for line in smaps.lines() {
            if let Some(kb) = line.strip_prefix("Anonymous:") {
                let anonymous = kb.trim().trim_end_matches("kB").trim();
                if let (Some(range), "0") = (candidate.take(), anonymous) {
                    if self.len < MAX {
                        self.files[self.len] = range;
                        self.len += 1;
                    }
                }
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(range), Some(perms)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((start, end)) = parse_range(range) else {
                continue;
            };
            let path = words.nth(3).unwrap_or("");
            candidate = None;
            if path == "[stack]" {
                self.stack = Some((start, end));
            } else if path.starts_with('/') && !perms.contains('w') && perms.ends_with('p') {
                candidate = Some((start, end));
            }
        }
    }

    /// Returns the free heap and drops the pages listed. Allocates nothing.
    pub fn apply(&self) {
        // SAFETY: malloc_trim only gives back free heap memory.
        unsafe { libc::malloc_trim(0) };
        for &(start, end) in &self.files[..self.len] {
            // SAFETY: a private, read-only file mapping without anonymous pages: its pages
            // come back unchanged from the file on the next access.
            unsafe {
                // No read-around either: a later fault maps its page, not its neighbours.
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_RANDOM);
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
        }
        if let Some((start, end)) = self.stack {
            let here = 0u8;
            let frame = std::ptr::addr_of!(here) as usize;
            let below = (frame & !(page_size() - 1)).saturating_sub(STACK_MARGIN);
            // Only on the main thread's stack (another thread's frame is elsewhere).
            if (start..end).contains(&frame) && below > start {
                // SAFETY: the stack grows down: everything below this frame, less a margin
                // for the calls made from here, holds no live data; it comes back zeroed.
                unsafe {
                    libc::madvise(
                        start as *mut libc::c_void,
                        below - start,
                        libc::MADV_DONTNEED,
                    )
                };
            }
        }
    }
}

fn parse_range(range: &str) -> Option<(usize, usize)> {
    let (start, end) = range.split_once('-')?;
    Some((
        usize::from_str_radix(start, 16).ok()?,
        usize::from_str_radix(end, 16).ok()?,
    ))
}

fn page_size() -> usize {
    // SAFETY: sysconf takes a name only.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
00400000-00401000 r--p 00000000 08:01 12 /usr/bin/netns
Size:                  4 kB
Anonymous:             0 kB
00401000-00500000 r-xp 00001000 08:01 12 /usr/bin/netns
Anonymous:             0 kB
00500000-00510000 r--p 00100000 08:01 12 /usr/bin/netns
Anonymous:            12 kB
00510000-00520000 rw-p 00110000 08:01 12 /usr/bin/netns
Anonymous:            64 kB
00600000-00700000 rw-p 00000000 00:00 0 [heap]
Anonymous:            64 kB
7ffd0000-7fff0000 rw-p 00000000 00:00 0 [stack]
Anonymous:            64 kB
7fff1000-7fff2000 r-xp 00000000 00:00 0 [vdso]
Anonymous:             0 kB
";

    #[test]
    fn drops_only_read_only_file_pages_without_anonymous_ones_and_finds_the_stack() {
        let mut plan = Plan::trim_only();
        plan.read(SMAPS);
        assert_eq!(
            &plan.files[..plan.len],
            &[(0x400000, 0x401000), (0x401000, 0x500000)]
        );
        assert_eq!(plan.stack, Some((0x7ffd0000, 0x7fff0000)));
    }

    #[test]
    fn shedding_keeps_this_process_working() {
        let kept = vec![7u8; 1 << 20];
        let plan = plan();
        assert!(plan.len > 0, "no read-only file mapping in {plan:?}");
        plan.apply();
        // Kept and applied again, as the supervisor does after each event.
        let _ = format!("{}", kept.len());
        plan.apply();
        assert_eq!(kept.iter().map(|&b| usize::from(b)).sum::<usize>(), 7 << 20);
        assert_eq!(format!("{}", 6 * 7), "42");
    }
}
