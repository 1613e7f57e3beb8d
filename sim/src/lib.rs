//! The block-device simulator (skeleton: owned by the sim helper).
