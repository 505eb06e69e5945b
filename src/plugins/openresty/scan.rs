//! What an OpenResty snippet uses that tidegate cannot run, found when the config loads
//! (never a silent `nil` at run time): timers, threads, cosockets and the other `ngx.*`
//! features with no equivalent, `lua-resty-*` libraries, and `ngx.re` patterns the
//! linear-time regex engine cannot compile.
//!
//! The scan reads the source with a small Lua lexer: comments are skipped and string
//! literals decoded, so a feature named inside a string or a comment is not an error.

/// A string literal: its decoded text, where it starts (byte offset) and its line.
struct Literal {
    text: String,
    start: usize,
    end: usize,
}

/// The source with comments and string contents blanked (same length, same lines), and its
/// string literals.
fn lex(src: &str) -> (String, Vec<Literal>) {
    let b = src.as_bytes();
    let mut code = b.to_vec();
    let mut lits = Vec::new();
    let mut i = 0;
    let blank = |code: &mut Vec<u8>, from: usize, to: usize| {
        for c in code.iter_mut().take(to.min(b.len())).skip(from) {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    while i < b.len() {
        let c = b[i];
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            let end = match long_bracket(b, i + 2) {
                Some((_, close)) => close,
                None => b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |p| i + p),
            };
            blank(&mut code, i, end);
            i = end;
        } else if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            let mut text = Vec::new();
            while j < b.len() && b[j] != c && b[j] != b'\n' {
                if b[j] == b'\\' && j + 1 < b.len() {
                    j += 1;
                    match b[j] {
                        b'n' => text.push(b'\n'),
                        b't' => text.push(b'\t'),
                        b'r' => text.push(b'\r'),
                        b'0'..=b'9' => {
                            let mut n = 0u32;
                            let mut k = 0;
                            while k < 3 && j < b.len() && b[j].is_ascii_digit() {
                                n = n * 10 + u32::from(b[j] - b'0');
                                j += 1;
                                k += 1;
                            }
                            text.push(n.min(255) as u8);
                            continue;
                        }
                        other => text.push(other),
                    }
                } else {
                    text.push(b[j]);
                }
                j += 1;
            }
            let end = (j + 1).min(b.len());
            lits.push(Literal {
                text: String::from_utf8_lossy(&text).into_owned(),
                start: i,
                end,
            });
            blank(&mut code, i + 1, end.saturating_sub(1));
            i = end;
        } else if c == b'[' {
            match long_bracket(b, i) {
                Some((open, close)) => {
                    let body_end = close.saturating_sub(open);
                    lits.push(Literal {
                        text: String::from_utf8_lossy(&b[i + open..body_end]).into_owned(),
                        start: i,
                        end: close,
                    });
                    blank(&mut code, i + 1, close.saturating_sub(1));
                    i = close;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    (String::from_utf8_lossy(&code).into_owned(), lits)
}

/// A long bracket `[==[ ... ]==]` at `at`: the length of its opening, and the offset just
/// past its closing.
fn long_bracket(b: &[u8], at: usize) -> Option<(usize, usize)> {
    if b.get(at) != Some(&b'[') {
        return None;
    }
    let level = b[at + 1..].iter().take_while(|&&c| c == b'=').count();
    if b.get(at + 1 + level) != Some(&b'[') {
        return None;
    }
    let open = level + 2;
    let close: Vec<u8> = std::iter::once(b']')
        .chain(std::iter::repeat_n(b'=', level))
        .chain(std::iter::once(b']'))
        .collect();
    let from = at + open;
    let end = b[from..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map_or(b.len(), |p| from + p + close.len());
    Some((open, end))
}

fn line_of(src: &str, at: usize) -> usize {
    src.as_bytes()[..at.min(src.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
        + 1
}

/// The `ngx.*` features tidegate has no equivalent for, and why.
const MISSING: &[(&str, &str)] = &[
    ("ngx.timer", "timers run outside any request"),
    ("ngx.thread", "light threads"),
    (
        "ngx.socket",
        "cosockets other than HTTP (use tidegate.http.request)",
    ),
    ("ngx.req.socket", "the raw downstream socket"),
    ("ngx.sleep", "sleeping in a request"),
    ("ngx.semaphore", "semaphores"),
    (
        "ngx.exec",
        "internal redirects (route with locations instead)",
    ),
    ("ngx.location.capture_multi", "parallel subrequests"),
    (
        "ngx.balancer",
        "balancer_by_lua (use on_upstream and up:set_peer)",
    ),
    ("ngx.ssl", "ssl_certificate_by_lua"),
    ("ngx.pipe", "spawning processes"),
    ("ngx.process", "the process API"),
    ("ngx.worker", "the worker API"),
    ("ngx.on_abort", "client-abort callbacks"),
    ("ngx.resp.", "ngx.resp.* (set headers through ngx.header)"),
];

/// The PCRE options of `ngx.re` mapped as the runtime maps them (`ngx.lua`): the pattern
/// the regex engine gets.
fn mapped(regex: &str, opts: &str) -> Result<String, String> {
    let mut inline = String::new();
    let mut anchored = false;
    for f in opts.chars() {
        match f {
            'i' | 'm' | 's' | 'x' => inline.push(f),
            'a' => anchored = true,
            'u' | 'U' | 'j' | 'o' | 'd' | 'D' => {}
            other => return Err(format!("option `{other}` is not supported")),
        }
    }
    let mut p = if anchored {
        format!("^(?:{regex})")
    } else {
        regex.to_string()
    };
    if !inline.is_empty() {
        p = format!("(?{inline}){p}");
    }
    Ok(p)
}

/// Every problem of `src`, each with its line.
pub fn problems(src: &str) -> Vec<String> {
    let (code, lits) = lex(src);
    let mut out = Vec::new();
    for (name, why) in MISSING {
        let mut from = 0;
        while let Some(p) = code[from..].find(name) {
            let at = from + p;
            let next = code
                .as_bytes()
                .get(at + name.len())
                .copied()
                .unwrap_or(b' ');
            let boundary = name.ends_with('.') || !(next.is_ascii_alphanumeric() || next == b'_');
            if boundary {
                out.push(format!(
                    "line {}: {} is not supported by tidegate ({why})",
                    line_of(src, at),
                    name.trim_end_matches('.')
                ));
                break;
            }
            from = at + name.len();
        }
    }
    // require "resty.x" (cosocket libraries) other than resty.core
    let mut from = 0;
    while let Some(p) = code[from..].find("require") {
        let at = from + p;
        from = at + 7;
        let rest = code[from..].trim_start_matches([' ', '(', '\t']);
        let lit_at = code.len() - rest.len();
        if let Some(l) = lits.iter().find(|l| l.start == lit_at) {
            if l.text.starts_with("resty.") && l.text != "resty.core" {
                out.push(format!(
                    "line {}: require \"{}\": lua-resty libraries are not available in tidegate \
                     (they need cosockets; see docs/openresty.md for what to use instead)",
                    line_of(src, at),
                    l.text
                ));
            }
        }
    }
    // ngx.re.*(subject, "literal pattern", "options")
    for f in ["match", "find", "gmatch", "sub", "gsub"] {
        let call = format!("ngx.re.{f}");
        let mut from = 0;
        while let Some(p) = code[from..].find(&call) {
            let at = from + p;
            from = at + call.len();
            let args = literal_args(&code, &lits, from);
            let Some(Some(pattern)) = args.first() else {
                continue;
            };
            let opt_index = if f == "sub" || f == "gsub" { 2 } else { 1 };
            let opts = args.get(opt_index).cloned().flatten().unwrap_or_default();
            let checked = mapped(pattern, &opts)
                .and_then(|p| regex::Regex::new(&p).map(|_| ()).map_err(|e| e.to_string()));
            if let Err(e) = checked {
                let first = e.lines().last().unwrap_or("").trim().to_string();
                out.push(format!(
                    "line {}: ngx.re.{f} pattern \"{pattern}\": tidegate's regex engine runs in \
                     linear time and cannot compile it (no look-around or backreferences): {first}",
                    line_of(src, at)
                ));
            }
        }
    }
    out
}

/// The arguments after the subject of a call whose `(` follows `from`: for each, its text
/// when it is one string literal.
fn literal_args(code: &str, lits: &[Literal], from: usize) -> Vec<Option<String>> {
    let b = code.as_bytes();
    let mut i = from;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if b.get(i) != Some(&b'(') {
        return Vec::new();
    }
    let mut depth = 0usize;
    let mut args: Vec<(usize, usize)> = Vec::new();
    let mut start = i + 1;
    while i < b.len() {
        match b[i] {
            b'(' | b'{' | b'[' => depth += 1,
            b')' | b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    args.push((start, i));
                    break;
                }
            }
            b',' if depth == 1 => {
                args.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    args.iter()
        .skip(1)
        .map(|&(s, e)| {
            let text = code[s..e].trim();
            let lead = s + (code[s..e].len() - code[s..e].trim_start().len());
            lits.iter()
                .find(|l| l.start == lead && l.end == lead + text.len())
                .map(|l| l.text.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn finds_what_cannot_run() {
        assert!(problems("local ok = ngx.timer.at(0, f)")[0].contains("line 1: ngx.timer"));
        assert!(problems("-- ngx.timer.at in a comment\nlocal s = 'ngx.sleep'").is_empty());
        assert!(problems("local r = require \"resty.redis\"")[0].contains("resty.redis"));
        assert!(problems("local c = require 'resty.core'").is_empty());
        let p = problems("\n\nlocal m = ngx.re.match(s, [[(\\w+)\\1]], 'jo')");
        assert!(p[0].starts_with("line 3: ngx.re.match pattern"), "{p:?}");
        assert!(problems("local m = ngx.re.match(s, \"^(?<user>\\\\w+)$\", \"jo\")").is_empty());
        let p = problems("local m = ngx.re.find(s, \"a(?=b)\")");
        assert!(p[0].contains("cannot compile"), "{p:?}");
        assert!(problems("local x = ngx.re.gsub(s, \"a\", \"b\", \"q\")")[0].contains("option `q`"));
        assert!(problems("local t = ngx.timers_table").is_empty());
    }
}
