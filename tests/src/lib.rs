//! Shared helpers for the end-to-end tests live in `tests/tests/common`; this crate builds the tracee programs in `src/bin/`.
