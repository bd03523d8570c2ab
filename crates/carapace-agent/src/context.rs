//! Keeping a conversation inside the model's context window.
//!
//! Each model call gets the whole history, unless its estimate (see
//! [`Message::estimate_tokens`]) exceeds the model's input budget (`min(contextWindow,
//! contextTokens) - maxTokens`). Then, in order, until it fits:
//! 1. tool results are shortened, oldest first (their head is kept, with a note saying how
//!    much was cut and that the tool can be run again);
//! 2. whole turns are left out, oldest first (a turn starts at a user message, so the view
//!    still starts with one and no tool call loses its result); the current turn never is.
//!
//! carapace does not summarise dropped turns: a summary needs another model call per
//! compaction and can state things that never happened; the transcript keeps everything, and
//! the system prompt says that earlier messages were left out. Every compaction is recorded in
//! the transcript (`compaction` event).

use crate::message::Message;

/// Kept of a shortened tool result.
const KEEP_CHARS: usize = 600;

/// The model's view of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fitted {
    pub messages: Vec<Message>,
    pub shortened: usize,
    pub dropped: usize,
    pub tokens_before: usize,
    pub tokens_after: usize,
}

/// Fits `history` (whose current turn starts at `current_start`) into `budget` tokens, of
/// which `fixed` are taken by the system prompt and tool schemas.
pub(crate) fn fit(
    history: &[Message],
    current_start: usize,
    fixed: usize,
    budget: usize,
) -> Fitted {
    let mut msgs: Vec<Message> = history.to_vec();
    let sum = |m: &[Message]| fixed + m.iter().map(Message::estimate_tokens).sum::<usize>();
    let before = sum(&msgs);
    let mut total = before;
    let mut shortened = 0;
    if total > budget {
        for m in msgs.iter_mut() {
            if total <= budget {
                break;
            }
            if let Message::Tool { content, .. } = m
                && content.chars().count() > KEEP_CHARS + 200
            {
                let old = m.estimate_tokens();
                if let Message::Tool { content, .. } = m {
                    let n = content.chars().count();
                    let (head, _) = crate::prompt::cut_chars(content, KEEP_CHARS);
                    *content = format!(
                        "{head}\n[carapace: {} of {n} characters of this old tool result were left out to fit the context window; run the tool again if you need them]",
                        n - KEEP_CHARS
                    );
                }
                total = total - old + m.estimate_tokens();
                shortened += 1;
            }
        }
    }
    let mut dropped = 0;
    let mut current = current_start.min(msgs.len());
    while total > budget {
        // The next turn start after the first message, not past the current turn.
        let next = msgs
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, m)| matches!(m, Message::User(_)))
            .map(|(i, _)| i);
        let cut = match next {
            Some(i) if i <= current => i,
            _ => break,
        };
        let removed: usize = msgs[..cut].iter().map(Message::estimate_tokens).sum();
        msgs.drain(..cut);
        dropped += cut;
        current -= cut;
        total -= removed;
    }
    Fitted {
        messages: msgs,
        shortened,
        dropped,
        tokens_before: before,
        tokens_after: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ContentPart;

    fn user(t: &str) -> Message {
        Message::User(vec![ContentPart::Text { text: t.into() }])
    }
    fn tool(n: usize) -> Message {
        Message::Tool {
            call_id: "c".into(),
            name: "read".into(),
            content: "x".repeat(n),
            is_error: false,
        }
    }
    fn asst(t: &str) -> Message {
        Message::Assistant {
            text: t.into(),
            tool_calls: vec![],
        }
    }

    #[test]
    fn untouched_when_it_fits() {
        let h = vec![user("a"), asst("b")];
        let f = fit(&h, 0, 10, 1000);
        assert_eq!(f.messages, h);
        assert_eq!((f.shortened, f.dropped), (0, 0));
    }

    #[test]
    fn old_tool_results_shrink_first_then_old_turns_go() {
        let h = vec![
            user("first"),
            tool(40_000),
            asst("one"),
            user("second"),
            tool(40_000),
            asst("two"),
            user("now"),
        ];
        // Enough for everything once both results are shortened.
        let f = fit(&h, 6, 10, 2_000);
        assert_eq!(f.shortened, 2);
        assert_eq!(f.dropped, 0);
        assert!(f.tokens_after <= 2_000);
        // Too small even then: the oldest turn goes, never the current one.
        let f = fit(&h, 6, 10, 300);
        assert!(f.dropped >= 3);
        assert!(matches!(&f.messages[0], Message::User(_)));
        assert_eq!(f.messages.last(), Some(&user("now")));
        // Impossible: the current turn stays anyway.
        let f = fit(&h, 6, 10, 1);
        assert_eq!(f.messages, vec![user("now")]);
    }
}
