//! Peer-controlled text, made safe for one terminal line.
//!
//! Whatever a peer sends (message text, a server's error message, a door's URL, a link's
//! close reason) is printed through [`escape`] or [`escape_bytes`], never raw: a newline
//! in it cannot start a line that looks like another node's message, a carriage return
//! cannot overwrite the sender's id, an ANSI escape cannot recolour or clear the terminal,
//! and a bidi override cannot reorder what follows it. The logs get the same treatment
//! ([`log_fields`]).
//!
//! What is escaped, and how (docs/operations.md, "Peer text on the terminal"):
//!
//! | input | printed |
//! |---|---|
//! | `\` | `\\` (so every escape below is unambiguous, and a script can undo them) |
//! | tab, line feed, carriage return | `\t`, `\n`, `\r` |
//! | any other C0 control, DEL | `\xNN` (e.g. `\x1b`, `\x7f`) |
//! | C1 controls (U+0080–U+009F), format characters (Unicode Cf: bidi overrides and isolates, zero-width space, BOM, …), U+2028, U+2029 | `\u{N}` (e.g. `\u{9b}`, `\u{202e}`) |
//! | a byte that is not part of valid UTF-8 | `\xNN` (e.g. `\xff`) |
//! | everything else (including U+200C and U+200D, the joiners emoji sequences and several scripts need) | as it is |

use std::fmt::Write;

/// `bytes` as one line of printable text: valid UTF-8 with its control and format
/// characters escaped, every invalid byte as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// `text` as one line of printable text: its control and format characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// Whether `c` (not ASCII) must not reach a terminal as it is: a C1 control, a format
/// character other than the two joiners, or a line or paragraph separator.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}' || (is_format(c) && !is_joiner(c))
}

/// U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER: they only change how the
/// characters around them are drawn (emoji sequences, Persian, Indic scripts).
fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200c}' | '\u{200d}')
}

/// Unicode general category Cf (format), Unicode 16.0. std has no table for it; this is
/// the one `ucd-generate` writes from the Unicode Character Database (as in regex-syntax
/// 0.8's `general_category::FORMAT`).
const FORMAT: &[(u32, u32)] = &[
    (0x00ad, 0x00ad),
    (0x0600, 0x0605),
    (0x061c, 0x061c),
    (0x06dd, 0x06dd),
    (0x070f, 0x070f),
    (0x0890, 0x0891),
    (0x08e2, 0x08e2),
    (0x180e, 0x180e),
    (0x200b, 0x200f),
    (0x202a, 0x202e),
    (0x2060, 0x2064),
    (0x2066, 0x206f),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
];

fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// The log's field formatter: each field's value is [`escape`]d, so a log line stays one
/// line whatever a peer put into it (a server's error message, a link's close reason). The
/// message comes first, then ` key=value` for the other fields, as tracing-subscriber's
/// default writes them.
pub fn log_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static
{
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let name = field.name();
        if name.starts_with("log.") {
            // The `log` crate's metadata, which the default formatter leaves out too.
            return Ok(());
        }
        let value = escape(&format!("{value:?}"));
        if name == "message" {
            writer.write_str(&value)
        } else {
            write!(writer, "{name}={value}")
        }
    })
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_format_characters_are_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"hello", "hello"),
            (b"", ""),
            ("caf\u{e9} \u{1f600}".as_bytes(), "caf\u{e9} \u{1f600}"),
            // A line of its own, posing as another node's message.
            (
                b"hi\n0745417c-f86f-8a45-a5d2-4d08085b221b forged",
                "hi\\n0745417c-f86f-8a45-a5d2-4d08085b221b forged",
            ),
            (b"a\r\nb", "a\\r\\nb"),
            (b"over\rwrite", "over\\rwrite"),
            (b"tab\there", "tab\\there"),
            (b"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
            (b"\x1b]0;title\x07", "\\x1b]0;title\\x07"),
            (b"\0nul", "\\x00nul"),
            (b"bs\x08", "bs\\x08"),
            (b"del\x7f", "del\\x7f"),
            // C1 controls: U+009B is CSI on terminals that take 8-bit controls, U+0085 NEL.
            ("\u{9b}2J".as_bytes(), "\\u{9b}2J"),
            ("next\u{85}line".as_bytes(), "next\\u{85}line"),
            // Bidi overrides, embeddings, isolates and marks.
            ("\u{202e}txt.exe".as_bytes(), "\\u{202e}txt.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}".as_bytes(),
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}".as_bytes(),
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            (
                "\u{200e}\u{200f}\u{61c}".as_bytes(),
                "\\u{200e}\\u{200f}\\u{61c}",
            ),
            // Invisible format characters: zero-width space, BOM, soft hyphen, a tag.
            (
                "a\u{200b}b\u{feff}c\u{ad}d\u{e0041}".as_bytes(),
                "a\\u{200b}b\\u{feff}c\\u{ad}d\\u{e0041}",
            ),
            // Line and paragraph separators.
            ("a\u{2028}b\u{2029}c".as_bytes(), "a\\u{2028}b\\u{2029}c"),
            // The joiners stay: emoji sequences need them.
            (
                "\u{1f469}\u{200d}\u{1f4bb} \u{200c}".as_bytes(),
                "\u{1f469}\u{200d}\u{1f4bb} \u{200c}",
            ),
            // A backslash is doubled, so that text cannot pose as an escape.
            (b"\\n is not a newline", "\\\\n is not a newline"),
            // Invalid UTF-8: each bad byte as \xNN, the valid text around it kept.
            (b"bad \xff byte", "bad \\xff byte"),
            (b"\xc3", "\\xc3"),
            (b"\xe2\x80", "\\xe2\\x80"),
            (b"\xc0\x80", "\\xc0\\x80"),
            (b"ok\xed\xa0\x80", "ok\\xed\\xa0\\x80"),
        ];
        for (input, want) in cases {
            assert_eq!(escape_bytes(input), *want, "{input:?}");
            if let Ok(text) = std::str::from_utf8(input) {
                assert_eq!(escape(text), *want, "{text:?}");
            }
        }
    }

    #[test]
    fn no_input_byte_reaches_the_output_as_a_control() {
        // Every single byte, every char up to U+FFFF, and a mix of both.
        let mut inputs: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        inputs.extend(
            (0..=0xffffu32)
                .filter_map(char::from_u32)
                .map(|c| c.to_string().into_bytes()),
        );
        inputs.push((0..=255u8).collect());
        for input in inputs {
            let out = escape_bytes(&input);
            assert!(
                !out.chars().any(|c| c.is_control() || needs_escape(c)),
                "{input:?} -> {out:?}"
            );
        }
    }

    #[test]
    fn the_format_table_is_sorted_and_disjoint() {
        for pair in FORMAT.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:x?}");
        }
        // Spot checks against the Unicode Character Database.
        for c in [
            '\u{ad}',
            '\u{202e}',
            '\u{2069}',
            '\u{feff}',
            '\u{e007f}',
            '\u{1343f}',
        ] {
            assert!(is_format(c), "{c:?}");
        }
        for c in [
            'a',
            '\u{2070}',
            '\u{2065}',
            '\u{fffc}',
            '\u{e0080}',
            '\u{13440}',
        ] {
            assert!(!is_format(c), "{c:?}");
        }
    }

    #[test]
    fn a_log_line_stays_one_line() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(log_fields())
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let reason = "bye\n2026-01-01T00:00:00Z  WARN forged\x1b[2J";
            tracing::info!(peer = %"p\u{202e}q", url = "ws://x/\r", "link down: {reason}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let line = text.strip_suffix('\n').expect("one line, ended");
        assert!(
            line.ends_with(
                "link down: bye\\n2026-01-01T00:00:00Z  WARN forged\\x1b[2J \
                 peer=p\\u{202e}q url=\"ws://x/\\\\r\""
            ),
            "{line:?}"
        );
        assert!(
            !line.chars().any(|c| c.is_control() || needs_escape(c)),
            "{line:?}"
        );
    }
}
