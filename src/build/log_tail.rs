//! The bounded tail of a build's console log that the status carries.
//!
//! Jenkins' progressive-text endpoint already leaves out its console notes and masks the
//! credentials a pipeline binds (`withCredentials`); the operator adds no masking of its own, as
//! it cannot know what else a pipeline prints. What it removes is what makes the text unreadable
//! in `kubectl`: console-note payloads that slipped through, terminal escape sequences (colours)
//! and other control characters.

/// At most this many lines are kept.
pub const MAX_LINES: usize = 50;
/// At most this many bytes are kept.
pub const MAX_BYTES: usize = 8 * 1024;

const ESC: char = '\u{1b}';
/// Jenkins' console notes: `ESC[8mha:<base64>ESC[0m`, hidden text for its HTML view.
const NOTE_START: &str = "\u{1b}[8mha:";
const NOTE_END: &str = "\u{1b}[0m";

/// The tail after `chunk` was appended to `tail`.
pub fn append(tail: &str, chunk: &str) -> String {
    let mut text = String::with_capacity(tail.len() + chunk.len());
    text.push_str(tail);
    text.push_str(&clean(chunk));
    last_lines(&text, MAX_LINES, MAX_BYTES).to_owned()
}

/// Removes console notes, escape sequences and control characters other than newline and tab.
fn clean(chunk: &str) -> String {
    let mut out = String::with_capacity(chunk.len());
    let mut rest = chunk;
    while let Some(at) = rest.find(NOTE_START) {
        out.push_str(&rest[..at]);
        let after = &rest[at + NOTE_START.len()..];
        rest = match after.find(NOTE_END) {
            Some(end) => &after[end + NOTE_END.len()..],
            None => "",
        };
    }
    out.push_str(rest);

    let mut cleaned = String::with_capacity(out.len());
    let mut chars = out.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI: ESC [ parameters and intermediates, then one final byte in @..~.
            ESC if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            '\n' | '\t' => cleaned.push(c),
            c if c.is_control() => {}
            c => cleaned.push(c),
        }
    }
    cleaned
}

/// The end of `text` holding at most `max_lines` lines and `max_bytes` bytes, cut at the
/// start of a line when possible.
fn last_lines(text: &str, max_lines: usize, max_bytes: usize) -> &str {
    // A trailing newline ends the last line; it does not start another one.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut start = 0;
    for (seen, (at, _)) in body.rmatch_indices('\n').enumerate() {
        if seen + 1 == max_lines {
            start = at + 1;
            break;
        }
    }
    let mut tail = &text[start..];
    if tail.len() > max_bytes {
        let mut cut = tail.len() - max_bytes;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = &tail[cut..];
        // Prefer whole lines, unless one line alone is longer than the limit.
        if let Some(newline) = tail.find('\n')
            && newline + 1 < tail.len()
        {
            tail = &tail[newline + 1..];
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_fifty_lines() {
        let mut tail = String::new();
        for n in 1..=120 {
            tail = append(&tail, &format!("line {n}\n"));
        }
        assert_eq!(tail.lines().count(), MAX_LINES);
        assert!(tail.starts_with("line 71\n"), "{tail}");
        assert!(tail.ends_with("line 120\n"));
    }

    #[test]
    fn a_line_split_across_reads_is_joined() {
        let tail = append(&append("", "Started\nBuil"), "ding 3 modules\n");
        assert_eq!(tail, "Started\nBuilding 3 modules\n");
    }

    #[test]
    fn the_tail_stays_within_eight_kibibytes_on_a_character_boundary() {
        let long = format!("{}\n", "é".repeat(3000));
        let tail = append("", &long.repeat(3));
        assert!(tail.len() <= MAX_BYTES, "{}", tail.len());
        assert!(tail.ends_with("é\n"));
    }

    #[test]
    fn escapes_notes_and_control_characters_are_removed() {
        let chunk = "\u{1b}[8mha:AAAAlh+LCAAAAAAAAP9b\u{1b}[0m[Pipeline] sh\r\n\
                     \u{1b}[32mgreen\u{1b}[0m\tok\u{7}\n";
        assert_eq!(append("", chunk), "[Pipeline] sh\ngreen\tok\n");
    }
}
