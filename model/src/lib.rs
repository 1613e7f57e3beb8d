//! The executable model of lcfs (skeleton: owned by the model helper).
