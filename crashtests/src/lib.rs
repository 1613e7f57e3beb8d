//! Shared helpers of the model-against-engine tests: conformance, and crash consistency over a
//! simulated device.
//!
//! - `convert`: the model's types to the engine's and back, field by field;
//! - `ops`: the operation alphabet and how an abstract op becomes a concrete call against the
//!   model's state (objects picked by index modulo the model's lists);
//! - `strategy`: proptest strategies for ops, with the argument bias of TESTING.md §2;
//! - `harness`: a model and an engine side by side, every call compared;
//! - `walk` and `compare`: the engine's layers as the model's canonical `LayerDump`, and a
//!   readable description of how two dumps differ;
//! - `steps`: the crash test's alphabet (operations, faults, power cuts) and its strategies;
//! - `tap`: the device in front of the simulator that probes every crash point;
//! - `recovery`: the crash predicate (TESTING.md §4) on one crash state;
//! - `crash`: the harness running steps over a simulated device, crash states checked;
//! - `workloads`: fixed workloads of the deterministic fault tests;
//! - `exhaustive`: the bounded exhaustive mode's enumeration of short sequences.
//!
//! Invariant: nothing here changes the engine except through its public API.

pub mod compare;
pub mod convert;
pub mod crash;
pub mod exhaustive;
pub mod harness;
pub mod ops;
pub mod recovery;
pub mod steps;
pub mod strategy;
pub mod tap;
pub mod walk;
pub mod workloads;
