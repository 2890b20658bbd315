//! The one memory-bounded scaled-dot-product attention every network uses.
