//! Shared helpers of the model-against-engine tests (conformance now, crash consistency with a
//! simulated device next).
//!
//! - `convert`: the model's types to the engine's and back, field by field;
//! - `ops`: the operation alphabet and how an abstract op becomes a concrete call against the
//!   model's state (objects picked by index modulo the model's lists);
//! - `strategy`: proptest strategies for ops, with the argument bias of TESTING.md §2;
//! - `harness`: a model and an engine side by side, every call compared;
//! - `walk` and `compare`: the engine's layers as the model's canonical `LayerDump`, and a
//!   readable description of how two dumps differ.
//!
//! Invariant: nothing here changes the engine except through its public API.

pub mod compare;
pub mod convert;
pub mod harness;
pub mod ops;
pub mod strategy;
pub mod walk;
