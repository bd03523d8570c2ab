//! webhook (todo)
