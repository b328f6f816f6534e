//! Splitting a file that does not fit the model's context into chunks that
//! do, at function or blank-line boundaries, with a few lines of overlap.
//!
//! Line numbers are the file's (1-based) throughout: a chunk shows the model
//! the file's real numbers, so its findings need no translation.

/// Lines the next chunk repeats from the end of the previous one, so that
/// code at a boundary is seen with some context on both sides.
pub const OVERLAP: usize = 3;

/// A range of the file's lines, 1-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// First line.
    pub start: usize,
    /// Last line (`>= start`).
    pub end: usize,
}

impl Chunk {
    /// Whether `line` is in the chunk.
    pub fn contains(&self, line: usize) -> bool {
        (self.start..=self.end).contains(&line)
    }

    /// Whether the chunk shares a line with `start..=end`.
    pub fn overlaps(&self, start: usize, end: usize) -> bool {
        self.start <= end && start <= self.end
    }
}

/// What showing line `i` (0-based) costs in the prompt, in bytes: the
/// number column (`width`), `" | "`, the text and a newline.
pub fn line_cost(line: &str, width: usize) -> usize {
    width + 3 + line.len() + 1
}

/// Splits `lines` into chunks whose numbered text costs at most `max_bytes`
/// each (see [`line_cost`]; a single longer line still gets a chunk of its
/// own). Every line is in at least one chunk; consecutive chunks share up to
/// `overlap` lines. One chunk when everything fits; none for no lines.
///
/// A chunk that must end early ends before the best boundary in the second
/// half of what would fit: a declaration at column 0 (`func`, `fn`, `def`,
/// `class`, ... with its doc comment), else a line at column 0 after a blank
/// line, else any line after a blank line, else wherever the budget ends.
pub fn plan(lines: &[&str], max_bytes: usize, overlap: usize) -> Vec<Chunk> {
    let n = lines.len();
    let width = n.to_string().len();
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < n {
        // The longest run from `start` that fits (at least one line).
        let mut end = start;
        let mut used = 0;
        while end < n && (end == start || used + line_cost(lines[end], width) <= max_bytes) {
            used += line_cost(lines[end], width);
            end += 1;
        }
        if end == n {
            chunks.push(Chunk {
                start: start + 1,
                end: n,
            });
            break;
        }
        // Split before the best boundary in the second half; latest wins ties.
        let lo = start + ((end - start) / 2).max(1);
        let (score, at) = (lo..=end)
            .map(|i| (boundary_score(lines, i), i))
            .max()
            .unwrap_or((0, end));
        let split = if score == 0 { end } else { at };
        chunks.push(Chunk {
            start: start + 1,
            end: split,
        });
        // Overlap at most half the chunk, and only as much as still lets
        // the next chunk reach past this one.
        let mut repeat = overlap.min((split - start) / 2);
        while repeat > 0 && cost(&lines[split - repeat..=split], width) > max_bytes {
            repeat -= 1;
        }
        start = split - repeat;
    }
    chunks
}

fn cost(lines: &[&str], width: usize) -> usize {
    lines.iter().map(|l| line_cost(l, width)).sum()
}

/// How good a place line `i` (0-based) is to start a chunk: 3 for a
/// declaration at column 0 (or the comment/attribute block right above
/// one), 2 for another line at column 0 after a blank line, 1 for any
/// other line after a blank line, 0 otherwise (a blank line itself, a
/// closing brace, the middle of a block).
pub fn boundary_score(lines: &[&str], i: usize) -> u8 {
    let Some(line) = lines.get(i) else { return 0 };
    if i == 0 || line.trim().is_empty() {
        return 0;
    }
    let prev = lines[i - 1];
    let at_col0 = !line.starts_with([' ', '\t']);
    if at_col0 && !is_head(prev) {
        if is_declaration(line) {
            return 3;
        }
        if is_head(line) {
            // A doc comment or attribute block: a boundary if a declaration follows it.
            let next = lines[i..].iter().find(|l| !is_head(l));
            if next.is_some_and(|l| is_declaration(l)) {
                return 3;
            }
        }
    }
    if !prev.trim().is_empty() {
        return 0;
    }
    let closes = line.trim_start().starts_with(['}', ')', ']']) || line.trim() == "end";
    match (at_col0, closes) {
        (_, true) => 0,
        (true, false) => 2,
        (false, false) => 1,
    }
}

/// A comment or attribute line at column 0 (belongs to what follows).
fn is_head(line: &str) -> bool {
    ["//", "/*", " *", "#", "--", "@", ";;"]
        .iter()
        .any(|p| line.starts_with(p))
        && !line.starts_with("#!")
        && !line.starts_with("#include")
        && !line.starts_with("#define")
}

/// A line at column 0 that starts a top-level declaration.
fn is_declaration(line: &str) -> bool {
    const MODIFIERS: &[&str] = &[
        "pub",
        "pub(crate)",
        "export",
        "default",
        "async",
        "static",
        "public",
        "private",
        "protected",
        "internal",
        "abstract",
        "final",
        "unsafe",
        "extern",
        "inline",
        "virtual",
        "override",
        "open",
        "data",
        "sealed",
        "const",
        "local",
    ];
    const STARTS: &[&str] = &[
        "func",
        "fn",
        "def",
        "class",
        "struct",
        "enum",
        "union",
        "impl",
        "trait",
        "type",
        "interface",
        "module",
        "mod",
        "function",
        "fun",
        "object",
        "namespace",
        "template",
        "sub",
        "proc",
        "macro_rules!",
        "var",
        "let",
        "const",
        "static",
    ];
    if line.starts_with([' ', '\t']) {
        return false;
    }
    // `pub(crate) fn`, `func(`, `class A<T>{`: the word before any bracket.
    let mut words = line.split_whitespace().map(|w| match w.strip_prefix("pub(") {
        Some(_) => "pub",
        None => w.split(['(', '<', '{', ':']).next().unwrap_or(w),
    });
    let mut word = words.next().unwrap_or("");
    let mut seen = 0;
    while MODIFIERS.contains(&word) && seen < 4 {
        if STARTS.contains(&word) && words.clone().next().is_some_and(|w| !MODIFIERS.contains(&w)) {
            break;
        }
        word = words.next().unwrap_or("");
        seen += 1;
    }
    STARTS.contains(&word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    /// A Go-like file of `funcs` functions of `body` lines each.
    fn go_file(funcs: usize, body: usize) -> String {
        let mut s = String::from("package main\n\nimport \"fmt\"\n");
        for f in 0..funcs {
            s.push_str(&format!("\n// f{f} does things.\nfunc f{f}() {{\n"));
            for b in 0..body {
                s.push_str(&format!("\tfmt.Println(\"function {f} line {b}\")\n"));
            }
            s.push_str("}\n");
        }
        s
    }

    fn assert_covers(chunks: &[Chunk], n: usize) {
        assert_eq!(chunks.first().unwrap().start, 1);
        assert_eq!(chunks.last().unwrap().end, n);
        for pair in chunks.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(b.start > a.start, "{chunks:?}: no progress");
            assert!(b.start <= a.end + 1, "{chunks:?}: a gap between {a:?} and {b:?}");
        }
        for c in chunks {
            assert!(c.start <= c.end && c.end <= n, "{c:?}");
        }
    }

    #[test]
    fn everything_fits_in_one_chunk() {
        let file = go_file(3, 4);
        let lines = text_lines(&file);
        assert_eq!(
            plan(&lines, 100_000, OVERLAP),
            [Chunk {
                start: 1,
                end: lines.len()
            }]
        );
        assert_eq!(plan(&[], 100, OVERLAP), []);
    }

    #[test]
    fn splits_before_declarations_with_their_comments() {
        let file = go_file(12, 6);
        let lines = text_lines(&file);
        let chunks = plan(&lines, 1000, OVERLAP);
        assert!(chunks.len() > 2, "{chunks:?}");
        assert_covers(&chunks, lines.len());
        for pair in chunks.windows(2) {
            // The chunk ends right before a function's doc comment...
            let next_line = lines[pair[0].end];
            assert!(
                next_line.starts_with("// f"),
                "{:?} ends before {next_line:?}",
                pair[0]
            );
            // ...and the next repeats the last OVERLAP lines of it.
            assert_eq!(pair[1].start, pair[0].end + 1 - OVERLAP);
        }
        for c in &chunks {
            let bytes = cost(&lines[c.start - 1..c.end], 3);
            assert!(bytes <= 1000, "{c:?} costs {bytes}");
        }
    }

    #[test]
    fn prefers_blank_lines_when_there_are_no_declarations() {
        let mut text = String::new();
        for para in 0..10 {
            for l in 0..5 {
                text.push_str(&format!("statement_{para}_{l} = compute({l})\n"));
            }
            text.push('\n');
        }
        let lines = text_lines(&text);
        let chunks = plan(&lines, 500, 0);
        assert_covers(&chunks, lines.len());
        for pair in chunks.windows(2) {
            assert!(
                lines[pair[0].end - 1].is_empty(),
                "{:?} should end at a blank line",
                pair[0]
            );
            assert_eq!(pair[1].start, pair[0].end + 1);
        }
    }

    #[test]
    fn cuts_anywhere_when_there_is_no_boundary() {
        let text = "x = 1\n".repeat(100);
        let lines = text_lines(&text);
        let chunks = plan(&lines, 100, OVERLAP);
        assert_covers(&chunks, 100);
        // 100 bytes hold 8 lines of 12 bytes (3 number + 3 + 5 + 1).
        assert_eq!(chunks[0], Chunk { start: 1, end: 8 });
        assert_eq!(chunks[1].start, 6);
    }

    #[test]
    fn an_overlong_line_gets_a_chunk_of_its_own() {
        let long = "y".repeat(1000);
        let lines = vec!["a", "b", long.as_str(), "c"];
        let chunks = plan(&lines, 50, OVERLAP);
        assert_covers(&chunks, 4);
        assert_eq!(
            chunks,
            [
                Chunk { start: 1, end: 2 },
                Chunk { start: 3, end: 3 },
                Chunk { start: 4, end: 4 }
            ]
        );
    }

    #[test]
    fn chunks_use_real_line_numbers_and_cover_every_line() {
        for (funcs, body, budget) in [(40, 3, 400), (5, 30, 900), (30, 1, 128), (3, 50, 300)] {
            let file = go_file(funcs, body);
            let lines = text_lines(&file);
            let chunks = plan(&lines, budget, OVERLAP);
            assert_covers(&chunks, lines.len());
            let mut seen = vec![false; lines.len()];
            for c in &chunks {
                for l in c.start..=c.end {
                    seen[l - 1] = true;
                }
            }
            assert!(seen.iter().all(|&s| s), "{funcs}x{body}@{budget}: {chunks:?}");
        }
    }

    #[test]
    fn boundary_scores() {
        let lines = text_lines(
            "package x\n\n/// Doc.\n#[inline]\npub fn a() {\n    1\n\n    2\n}\n\nstatic X: u8 = 1;\nlet y = 2;\n}\n",
        );
        assert_eq!(boundary_score(&lines, 0), 0, "the first line");
        assert_eq!(boundary_score(&lines, 1), 0, "a blank line");
        assert_eq!(boundary_score(&lines, 2), 3, "doc comment of a declaration");
        assert_eq!(boundary_score(&lines, 3), 0, "inside the comment block");
        assert_eq!(boundary_score(&lines, 4), 0, "declaration under its attributes");
        assert_eq!(boundary_score(&lines, 7), 1, "indented after a blank line");
        assert_eq!(boundary_score(&lines, 10), 3, "static item");
        assert_eq!(boundary_score(&lines, 11), 3, "let at column 0");
        assert_eq!(boundary_score(&lines, 12), 0, "closing brace");
        for (line, want) in [
            ("func main() {", true),
            ("def run(x):", true),
            ("class A:", true),
            ("export default function f() {}", true),
            ("pub(crate) async fn f()", true),
            ("public static void main(String[] a) {", true),
            ("int main(void) {", false),
            ("  fn nested()", false),
            ("x = 1", false),
            ("const std = @import(\"std\");", true),
        ] {
            assert_eq!(is_declaration(line), want, "{line}");
        }
    }
}
