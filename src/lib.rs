//! BackgroundErase: background removal that runs on the user's own machine.
//!
//! The library holds everything that needs no window: the engine (decode,
//! preprocess, inference, postprocess, encode, pipeline, batch), compositing
//! (one background type, the CPU reference and the WGSL compositor), the
//! privacy core, the models (catalog, installs, downloads) and setup. `app`
//! is the egui front end over them, with the worker threads it drives; the
//! binary adds the command line.

// Input and resources never panic: an `expect` states a true invariant, with
// an `allow` saying why, next to it.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod checksum;
pub mod composite;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod instance;
pub mod limits;
pub mod models;
pub mod net;
pub mod partials;
pub mod paths;
pub mod prefs;
pub mod presets;
pub mod privacy;
pub mod setup;

pub use error::Error;
