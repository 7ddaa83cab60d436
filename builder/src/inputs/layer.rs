//! Layer blobs: digest check and decompression (placeholder: being implemented).
