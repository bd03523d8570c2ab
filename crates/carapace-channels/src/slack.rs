//! slack (todo)
