//! A deliberately small reading of a POSIX `sh` command line, for the exec allowlist: it splits
//! the line into simple commands (at `;`, newlines, `&&`, `||` and `|`), removes quotes, and
//! refuses everything whose effect it cannot see from the text alone — parameter expansion and
//! command substitution (`$`, backquotes), redirections, background jobs, subshells and
//! function definitions. What it returns is exactly what `sh` would run, word for word, so the
//! allowlist can check the executable of every command on the line.
//!
//! Refusing is always safe here: a refused line simply does not run.

/// One simple command: its words after quote removal, and facts about its first word that
/// the allowlist check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleCommand {
    /// The words, quotes removed.
    pub words: Vec<String>,
    /// Whether the first word has unquoted characters `sh` would expand or treat specially
    /// at the start of a command (`*`, `?`, `[`, `{`, `}`, a leading `~`, an assignment `=`).
    pub first_word_special: Option<char>,
}

/// Why a line cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellRefusal {
    /// What was found (`"$ (expansion or substitution)"`, `"> (redirection)"`, …).
    pub what: String,
    /// Byte offset in the line.
    pub at: usize,
}

struct Word {
    text: String,
    /// Set once any character of the word has been read (an empty `''` is a word).
    started: bool,
    quoted_any: bool,
    special_first: Option<char>,
}

impl Word {
    fn new() -> Word {
        Word {
            text: String::new(),
            started: false,
            quoted_any: false,
            special_first: None,
        }
    }
}

struct Lexer<'a> {
    chars: Vec<(usize, char)>,
    i: usize,
    line: &'a str,
    commands: Vec<SimpleCommand>,
    words: Vec<String>,
    first_special: Option<char>,
    word: Word,
    /// The last thing that ended a command was an operator that needs a command after it
    /// (`|`, `&&`, `||`), or the line has only just begun.
    need_command: bool,
}

/// Splits `line` into its simple commands.
pub fn split(line: &str) -> Result<Vec<SimpleCommand>, ShellRefusal> {
    let mut lx = Lexer {
        chars: line.char_indices().collect(),
        i: 0,
        line,
        commands: Vec::new(),
        words: Vec::new(),
        first_special: None,
        word: Word::new(),
        need_command: false,
    };
    lx.run()?;
    Ok(lx.commands)
}

fn refuse<T>(what: &str, at: usize) -> Result<T, ShellRefusal> {
    Err(ShellRefusal {
        what: what.to_string(),
        at,
    })
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> Option<char> {
        self.chars.get(self.i + k).map(|(_, c)| *c)
    }

    fn pos(&self) -> usize {
        self.chars
            .get(self.i)
            .map(|(p, _)| *p)
            .unwrap_or(self.line.len())
    }

    fn end_word(&mut self) {
        if self.word.started {
            let w = std::mem::replace(&mut self.word, Word::new());
            if self.words.is_empty() {
                self.first_special = w.special_first;
            }
            self.words.push(w.text);
        }
    }

    /// Ends the current command. `needs_more`: the operator requires a command after it.
    fn end_command(&mut self, at: usize, needs_more: bool) -> Result<(), ShellRefusal> {
        self.end_word();
        if self.words.is_empty() {
            if needs_more || self.need_command {
                return refuse("an operator without a command", at);
            }
        } else {
            self.commands.push(SimpleCommand {
                words: std::mem::take(&mut self.words),
                first_word_special: self.first_special.take(),
            });
        }
        self.need_command = needs_more;
        Ok(())
    }

    fn push_unquoted(&mut self, c: char) {
        // Characters sh treats specially in the first word of a command.
        let at_start = !self.word.started;
        let first_word = self.words.is_empty();
        if first_word && self.word.special_first.is_none() {
            let special = matches!(c, '*' | '?' | '[' | '{' | '}')
                || (c == '~' && at_start)
                || (c == '=' && !self.word.quoted_any && is_name(&self.word.text));
            if special {
                self.word.special_first = Some(c);
            }
        }
        self.word.text.push(c);
        self.word.started = true;
    }

    fn push_quoted(&mut self, c: char) {
        self.word.text.push(c);
        self.word.started = true;
        self.word.quoted_any = true;
    }

    fn run(&mut self) -> Result<(), ShellRefusal> {
        while let Some(c) = self.peek(0) {
            let at = self.pos();
            match c {
                ' ' | '\t' => {
                    self.end_word();
                    self.i += 1;
                }
                '\n' | ';' => {
                    // A newline after `|`, `&&` or `||` continues the command line.
                    if c == '\n' && self.need_command && self.words.is_empty() && !self.word.started
                    {
                        self.i += 1;
                        continue;
                    }
                    if c == ';' && self.peek(1) == Some(';') {
                        return refuse(";; (case syntax)", at);
                    }
                    if c == ';' && self.words.is_empty() && !self.word.started {
                        return refuse("; without a command", at);
                    }
                    self.end_command(at, false)?;
                    self.i += 1;
                }
                '&' => {
                    if self.peek(1) == Some('&') {
                        self.end_command(at, true)?;
                        self.i += 2;
                    } else {
                        return refuse("& (background job)", at);
                    }
                }
                '|' => {
                    if self.peek(1) == Some('|') {
                        self.end_command(at, true)?;
                        self.i += 2;
                    } else if self.peek(1) == Some('&') {
                        return refuse("|& (pipe of standard error)", at);
                    } else {
                        self.end_command(at, true)?;
                        self.i += 1;
                    }
                }
                '<' | '>' => return refuse(&format!("{c} (redirection)"), at),
                '(' | ')' => return refuse(&format!("{c} (subshell or function definition)"), at),
                '`' => return refuse("` (command substitution)", at),
                '$' => return refuse("$ (expansion or substitution)", at),
                '#' if !self.word.started => {
                    // A comment, to the end of the line.
                    while let Some(c) = self.peek(0) {
                        if c == '\n' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                '\'' => {
                    self.word.started = true;
                    self.word.quoted_any = true;
                    self.i += 1;
                    loop {
                        match self.peek(0) {
                            None => return refuse("an unterminated ' quote", at),
                            Some('\'') => {
                                self.i += 1;
                                break;
                            }
                            Some(ch) => {
                                self.push_quoted(ch);
                                self.i += 1;
                            }
                        }
                    }
                }
                '"' => {
                    self.word.started = true;
                    self.word.quoted_any = true;
                    self.i += 1;
                    loop {
                        let at = self.pos();
                        match self.peek(0) {
                            None => return refuse("an unterminated \" quote", at),
                            Some('"') => {
                                self.i += 1;
                                break;
                            }
                            Some('$') => return refuse("$ (expansion or substitution)", at),
                            Some('`') => return refuse("` (command substitution)", at),
                            Some('\\') => match self.peek(1) {
                                Some(n @ ('$' | '`' | '"' | '\\')) => {
                                    self.push_quoted(n);
                                    self.i += 2;
                                }
                                Some('\n') => self.i += 2,
                                Some(_) => {
                                    self.push_quoted('\\');
                                    self.i += 1;
                                }
                                None => return refuse("an unterminated \" quote", at),
                            },
                            Some(ch) => {
                                self.push_quoted(ch);
                                self.i += 1;
                            }
                        }
                    }
                }
                '\\' => match self.peek(1) {
                    Some('\n') => self.i += 2,
                    Some(n) => {
                        self.push_quoted(n);
                        self.i += 2;
                    }
                    None => return refuse("a \\ at the end of the line", at),
                },
                c => {
                    self.push_unquoted(c);
                    self.i += 1;
                }
            }
        }
        let end = self.line.len();
        self.end_word();
        if self.words.is_empty() {
            if self.need_command {
                return refuse("an operator without a command", end);
            }
        } else {
            self.commands.push(SimpleCommand {
                words: std::mem::take(&mut self.words),
                first_word_special: self.first_special.take(),
            });
        }
        Ok(())
    }
}

/// A shell variable name (`[A-Za-z_][A-Za-z0-9_]*`).
fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f == '_' || f.is_ascii_alphabetic())
        && c.all(|x| x == '_' || x.is_ascii_alphanumeric())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        split(line).unwrap().into_iter().map(|c| c.words).collect()
    }

    #[test]
    fn splits_and_unquotes() {
        assert_eq!(words("ls -l"), vec![vec!["ls", "-l"]]);
        assert_eq!(
            words("git status && git log | head -n 3; echo 'a b' \"c\\\"d\""),
            vec![
                vec!["git", "status"],
                vec!["git", "log"],
                vec!["head", "-n", "3"],
                vec!["echo", "a b", "c\"d"],
            ]
        );
        assert_eq!(words("ls\npwd\n"), vec![vec!["ls"], vec!["pwd"]]);
        assert_eq!(words("ls |\n wc -l"), vec![vec!["ls"], vec!["wc", "-l"]]);
        assert_eq!(words("ls # rm -rf /"), vec![vec!["ls"]]);
        assert_eq!(words("echo a#b"), vec![vec!["echo", "a#b"]]);
        assert_eq!(words("l\\s"), vec![vec!["ls"]]);
        assert_eq!(words("echo ''"), vec![vec!["echo", ""]]);
        assert!(words("").is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_see_through() {
        for line in [
            "echo $HOME",
            "echo \"$(id)\"",
            "echo `id`",
            "ls > out",
            "cat < /etc/passwd",
            "sleep 1 &",
            "(ls)",
            "f() { ls; }",
            "ls |& cat",
            "ls |",
            "&& ls",
            "ls && ",
            "; ls",
            "echo 'open",
            "echo \"open",
            "ls \\",
            "case x in x) ;; esac",
        ] {
            assert!(split(line).is_err(), "{line:?} must be refused");
        }
    }

    #[test]
    fn marks_special_first_words() {
        let c = split("FOO=bar ls").unwrap();
        assert_eq!(c[0].first_word_special, Some('='));
        let c = split("/usr/bin/l* -a").unwrap();
        assert_eq!(c[0].first_word_special, Some('*'));
        let c = split("~/bin/x").unwrap();
        assert_eq!(c[0].first_word_special, Some('~'));
        let c = split("ls a=b *").unwrap();
        assert_eq!(c[0].first_word_special, None);
        let c = split("'FOO=bar' ls").unwrap();
        assert_eq!(c[0].first_word_special, None);
    }
}
