//! Writing to the node safely.
