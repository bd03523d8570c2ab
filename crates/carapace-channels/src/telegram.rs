//! telegram (todo)
