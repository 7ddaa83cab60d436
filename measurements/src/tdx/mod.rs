//! Intel TDX MRTD and RTMRs (placeholder: being implemented).
