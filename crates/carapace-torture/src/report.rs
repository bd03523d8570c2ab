//! One family's figures and the problems behind them.

use serde_json::{Value, json};

/// Most problems kept in full per family (the count is always exact).
const KEPT: usize = 20;

/// The figures of one family.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    /// Family name (`escape`, `races`, …).
    pub family: String,
    /// Attempts made.
    pub attempts: u64,
    /// Attempts refused with a typed error, as they should be.
    pub refused: u64,
    /// Problems: escapes, leaks, torn files, panics, hangs, bare 500s.
    pub problems: u64,
    /// The first problems, described.
    pub details: Vec<String>,
    /// Facts about the run (what was covered, what was skipped and why).
    pub notes: Vec<String>,
}

impl Figures {
    /// Empty figures for `family`.
    pub fn new(family: &str) -> Figures {
        Figures {
            family: family.to_string(),
            ..Figures::default()
        }
    }

    /// Records one problem.
    pub fn problem(&mut self, what: impl Into<String>) {
        self.problems += 1;
        if self.details.len() < KEPT {
            self.details.push(what.into());
        }
    }

    /// Records a note.
    pub fn note(&mut self, what: impl Into<String>) {
        self.notes.push(what.into());
    }

    /// Adds another run's figures to these.
    pub fn absorb(&mut self, other: Figures) {
        self.attempts += other.attempts;
        self.refused += other.refused;
        self.problems += other.problems;
        for d in other.details {
            if self.details.len() < KEPT {
                self.details.push(d);
            }
        }
        self.notes.extend(other.notes);
    }

    /// JSON form (also the worker protocol between processes).
    pub fn to_json(&self) -> Value {
        json!({
            "family": self.family,
            "attempts": self.attempts,
            "refused": self.refused,
            "problems": self.problems,
            "details": self.details,
            "notes": self.notes,
        })
    }

    /// Parses [`Figures::to_json`] output.
    pub fn from_json(v: &Value) -> Option<Figures> {
        let strings = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Some(Figures {
            family: v["family"].as_str()?.to_string(),
            attempts: v["attempts"].as_u64()?,
            refused: v["refused"].as_u64()?,
            problems: v["problems"].as_u64()?,
            details: strings("details"),
            notes: strings("notes"),
        })
    }
}
