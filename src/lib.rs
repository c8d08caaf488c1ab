//! BackgroundErase: background removal that runs on the user's own machine.
//!
//! The library holds everything that needs no window: the engine (decode,
//! preprocess, inference, postprocess, composite, encode, pipeline), the model
//! catalog, runtime discovery and setup. The binary adds the CLI and the app.

pub mod catalog;
pub mod checksum;
pub mod engine;
pub mod error;
pub mod paths;
pub mod runtime;
pub mod setup;

pub use error::Error;
