//! The web trace explorer. The Leptos application lands here with the UI issue; until then the crate is empty so the workspace layout is final.
