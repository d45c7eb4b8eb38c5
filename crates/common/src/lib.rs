//! The small pieces every musicdiff crate shares and none owns: how an error is classified
//! (the user's to fix, or the machine's), crash-safe file writes, the seeded generator and
//! where assets and models are found. It depends on no other crate of ours, so that the
//! inference path can use it without pulling in the dataset or corpus machinery.

pub mod atomic;
pub mod duration;
pub mod error;
pub mod locate;
pub mod rng;
pub mod walk;

pub use error::{NotFound, PathError, WriteError, io_is_bad_input};
pub use locate::assets;
pub use rng::Rng;
