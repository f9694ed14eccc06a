//! The process allocator: mimalloc, told to keep the memory it frees.
//!
//! mimalloc instead of the system allocator: `trace report` on 10 million
//! requests spent more time in the kernel than in its own code under glibc
//! malloc (bench/report/README.md).
//!
//! By default mimalloc hands freed memory back to the kernel a second after
//! it is freed ("purging"). `trace convert` recycles the same few hundred
//! megabytes of row-group buffers the whole run; with purging on, the
//! kernel kept unmapping and zeroing them again: on the 1.1 GB ShareGPT
//! benchmark page faults fell from 31,000-49,000 a run to about 1,300, and
//! `trace report` on 10 M requests spent 6-7 s in the kernel instead of 11
//! (bench/README.md, bench/report/README.md). A command's peak memory is what stays resident, which
//! for a command-line run that ends is no loss. `MIMALLOC_PURGE_DELAY` in
//! the environment still decides, for anyone who wants purging back.

use libmimalloc_sys::{mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` of mimalloc's `mi_option_e` (the same index from
/// mimalloc 2.1 through 3.x; libmimalloc-sys does not name it).
const PURGE_DELAY: mi_option_t = 15;

/// Turns purging off unless `MIMALLOC_PURGE_DELAY` is set. Called first
/// thing in `main`, before any other thread exists.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores a value in mimalloc's option table;
    // it takes no pointers, and this runs on the only thread.
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set(PURGE_DELAY, -1);
    }
}
