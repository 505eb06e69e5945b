//! One replacement rule applied to a stream of bytes, chunk by chunk.
//!
//! Text that could still be the start of a match is kept back until the next chunk (at most
//! the rule's `window`), so a match split across chunks is found. A literal keeps back its
//! length less one byte; a regex keeps back `window` bytes and takes a match only once
//! `window` bytes follow it (so a greedy pattern has had its chance to grow), which bounds a
//! regex match that spans chunks to `window` bytes.

use regex::bytes::Regex;

/// The most a stage holds back for a regex match still growing; past it the text goes on
/// unmatched.
const MAX_CARRY: usize = 1 << 20;

/// A rule, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    pub re: Regex,
    /// literal replacement bytes, or a regex template (`$1`, `${name}`)
    pub replace: Vec<u8>,
    pub literal: bool,
    /// replace the first match only
    pub once: bool,
    /// bytes kept back between chunks
    pub window: usize,
}

/// A rule's progress through one response.
#[derive(Debug)]
pub struct Stage {
    rule: std::sync::Arc<Rule>,
    carry: Vec<u8>,
    done: bool,
}

impl Stage {
    pub fn new(rule: std::sync::Arc<Rule>) -> Stage {
        Stage {
            rule,
            carry: Vec::new(),
            done: false,
        }
    }

    /// Feed `input`; what can be sent on now. With `end`, everything kept back comes out.
    pub fn feed(&mut self, input: &[u8], end: bool) -> Vec<u8> {
        let r = &*self.rule;
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(input);
        if self.done {
            return buf;
        }
        let mut out = Vec::with_capacity(buf.len());
        let mut pos = 0;
        // how many bytes must follow a regex match before it is taken (greedy growth)
        let lookahead = if r.literal { 0 } else { r.window };
        // a match found too near the end: it waits, whole, for the next chunk
        let mut pending = None;
        while pos <= buf.len() {
            let Some(caps) = r.re.captures_at(&buf, pos) else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            if !end && m.end() + lookahead > buf.len() {
                pending = Some(m.start());
                break;
            }
            out.extend_from_slice(&buf[pos..m.start()]);
            if r.literal {
                out.extend_from_slice(&r.replace);
            } else {
                caps.expand(&r.replace, &mut out);
            }
            pos = m.end();
            if r.once {
                self.done = true;
                out.extend_from_slice(&buf[pos..]);
                return out;
            }
        }
        let keep = if end {
            0
        } else if r.literal {
            r.window.saturating_sub(1)
        } else {
            r.window
        };
        let mut cut = buf.len().saturating_sub(keep);
        if let Some(start) = pending {
            // never split a match that may still grow, unless it holds back too much
            if buf.len() - start <= MAX_CARRY {
                cut = cut.min(start);
            }
        }
        let cut = cut.max(pos);
        out.extend_from_slice(&buf[pos..cut]);
        self.carry = buf[cut..].to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn literal(find: &str, replace: &str, once: bool) -> Arc<Rule> {
        Arc::new(Rule {
            re: Regex::new(&regex::escape(find)).unwrap(),
            replace: replace.as_bytes().to_vec(),
            literal: true,
            once,
            window: find.len(),
        })
    }

    fn run(rule: Arc<Rule>, text: &str, split: usize) -> String {
        let mut s = Stage::new(rule);
        let mut out = Vec::new();
        for piece in text.as_bytes().chunks(split.max(1)) {
            out.extend(s.feed(piece, false));
        }
        out.extend(s.feed(b"", true));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn literal_matches_across_any_split() {
        let text = "a http://old.test/x and http://old.test/y end";
        let want = "a https://new.test/x and https://new.test/y end";
        for split in 1..text.len() + 1 {
            assert_eq!(
                run(
                    literal("http://old.test", "https://new.test", false),
                    text,
                    split
                ),
                want,
                "split {split}"
            );
        }
        let first = "a https://new.test/x and http://old.test/y end";
        for split in 1..text.len() + 1 {
            assert_eq!(
                run(
                    literal("http://old.test", "https://new.test", true),
                    text,
                    split
                ),
                first
            );
        }
    }

    #[test]
    fn regex_with_groups_across_splits() {
        let rule = Arc::new(Rule {
            re: Regex::new("<title>(.*?)</title>").unwrap(),
            replace: b"<title>$1 | Site</title>".to_vec(),
            literal: false,
            once: false,
            window: 64,
        });
        let text = "<html><title>Home</title><p>x</p><title>Two</title></html>";
        let want = "<html><title>Home | Site</title><p>x</p><title>Two | Site</title></html>";
        for split in 1..text.len() + 1 {
            assert_eq!(run(rule.clone(), text, split), want, "split {split}");
        }
    }
}
