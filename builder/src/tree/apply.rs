//! Applying one layer's tar stream onto a [`Tree`] (placeholder: being implemented).
