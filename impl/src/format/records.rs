//! Item keys and values of the layer trees (owned by the namespace helper).
