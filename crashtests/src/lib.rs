//! Shared helpers of the model-against-engine tests.
