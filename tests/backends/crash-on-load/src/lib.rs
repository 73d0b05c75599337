//! A library that aborts whatever loads it, before any of its symbols can be looked at: what
//! `sygen service backend add` must survive by checking files in a child process.

extern "C" fn abort_on_load() {
    std::process::abort();
}

/// Run by the dynamic loader when the library is loaded.
#[used]
#[link_section = ".init_array"]
static ABORT_ON_LOAD: extern "C" fn() = abort_on_load;
