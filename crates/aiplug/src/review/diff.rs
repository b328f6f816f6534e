//! The added and changed lines of a unified diff, for `aiplug review --diff`.
//!
//! Reads `git diff` (and `git show`, `git format-patch`) output and plain
//! `diff -u` output. For each file that exists after the change, it gives
//! the lines of the new file that the diff adds or changes, as inclusive
//! 1-based ranges:
//!
//! ```text
//! --- a/main.go
//! +++ b/main.go
//! @@ -3,3 +3,4 @@ func main() {
//!  a
//! -b
//! +B
//! +C
//!  d
//! ```
//!
//! gives `main.go` with `[(4, 5)]`. Deleted files are left out, and so are
//! files the diff adds no line to (pure renames, mode changes, binary files,
//! hunks that only delete).

use std::collections::HashMap;
use std::fmt;

/// A file of the new side of a diff and the lines the diff adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffFile {
    /// The path after the change (the `+++` side), without git's `b/`
    /// prefix, quoting undone.
    pub path: String,
    /// Added or changed lines of the new file: inclusive, 1-based, sorted,
    /// adjacent lines merged (`(4, 6)` is lines 4, 5 and 6). Never empty.
    pub added: Vec<(u32, u32)>,
}

/// Why a diff could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffError {
    /// The 1-based line of the diff at fault.
    pub line: usize,
    /// That line's text (cut to 80 characters).
    pub text: String,
    /// What is wrong with it.
    pub kind: DiffErrorKind,
}

/// The ways a diff can be malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiffErrorKind {
    /// The input has text but no file header (`diff --git`, `---`/`+++`): it
    /// is not a diff.
    NotADiff,
    /// A `+++` line with no `---` line before it, or with no path.
    BadFileHeader,
    /// A line starting with `@@` that is not `@@ -START[,COUNT]
    /// +START[,COUNT] @@` (combined diffs' `@@@` included).
    BadHunkHeader,
    /// A hunk before any file header.
    HunkOutsideFile,
    /// A line in a hunk that does not fit it: not ` `, `-`, `+` or `\`
    /// while the header's counts say lines remain, or a `-`/`+`/context
    /// line beyond the counts.
    UnexpectedHunkLine,
    /// The input ended inside the hunk whose header is on the line,
    /// `old` old-side and `new` new-side lines short.
    Truncated {
        /// Old-side lines missing.
        old: u32,
        /// New-side lines missing.
        new: u32,
    },
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed diff at line {} ({:?}): ", self.line, self.text)?;
        match &self.kind {
            DiffErrorKind::NotADiff => {
                f.write_str("no `diff --git` or `---`/`+++` file header: this is not a unified diff")
            }
            DiffErrorKind::BadFileHeader => f.write_str("a `+++ PATH` header must follow a `--- PATH` header"),
            DiffErrorKind::BadHunkHeader => {
                f.write_str("expected a hunk header `@@ -START[,COUNT] +START[,COUNT] @@` (combined diffs are not supported)")
            }
            DiffErrorKind::HunkOutsideFile => f.write_str("hunk before any `--- PATH`/`+++ PATH` file header"),
            DiffErrorKind::UnexpectedHunkLine => {
                f.write_str("line does not fit the hunk: its header's line counts disagree with its lines")
            }
            DiffErrorKind::Truncated { old, new } => write!(
                f,
                "the diff ends inside this hunk, {old} old and {new} new lines short of its header's counts"
            ),
        }
    }
}

impl std::error::Error for DiffError {}

/// The hunk being read.
struct Hunk {
    old_left: u32,
    new_left: u32,
    next_line: u32,
    header_line: usize,
}

/// Reads a unified diff. See the [module docs](self) for what is returned.
///
/// Empty input (or only blank lines) gives no files. Text around the diff
/// that is not inside a hunk (a commit message, `index` and `similarity`
/// lines, `Binary files ... differ`) is skipped. Lines may end in `\r\n`.
///
/// # Errors
///
/// A [`DiffError`] naming the first line that does not parse; see
/// [`DiffErrorKind`].
pub fn parse(diff: &str) -> Result<Vec<DiffFile>, DiffError> {
    let lines: Vec<&str> = diff.lines().collect();
    let error = |index: usize, kind| DiffError {
        line: index + 1,
        text: lines
            .get(index)
            .map_or(String::new(), |l| l.chars().take(80).collect()),
        kind,
    };
    // Files by first appearance, and their added lines.
    let mut files: Vec<(String, Vec<u32>)> = Vec::new();
    let mut by_path: HashMap<String, usize> = HashMap::new();
    // `None`: no file header yet. `Some(None)`: a deleted file.
    let mut current: Option<Option<usize>> = None;
    let mut git_prefixes: Option<bool> = None;
    let mut saw_header = false;
    let mut hunk: Option<Hunk> = None;

    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let Some(h) = hunk.as_mut().filter(|h| h.old_left > 0 || h.new_left > 0) {
            match line.as_bytes().first() {
                // Some tools strip the space of an empty context line.
                Some(b' ') | None if h.old_left > 0 && h.new_left > 0 => {
                    h.old_left -= 1;
                    h.new_left -= 1;
                    h.next_line += 1;
                }
                Some(b'-') if h.old_left > 0 => h.old_left -= 1,
                Some(b'+') if h.new_left > 0 => {
                    if let Some(Some(file)) = current {
                        files[file].1.push(h.next_line);
                    }
                    h.new_left -= 1;
                    h.next_line += 1;
                }
                Some(b'\\') => {}
                _ => return Err(error(i, DiffErrorKind::UnexpectedHunkLine)),
            }
            i += 1;
            continue;
        }
        hunk = None;
        let header = line.trim_end_matches('\r');
        if let Some(rest) = header.strip_prefix("diff ") {
            saw_header = true;
            current = None;
            git_prefixes = rest
                .strip_prefix("--git ")
                .map(|paths| paths.starts_with("a/") || paths.starts_with("\"a/"));
        } else if header.starts_with("--- ") && lines.get(i + 1).is_some_and(|next| next.starts_with("+++ "))
        {
            saw_header = true;
            let old = header_path(&header[4..]).map_err(|()| error(i, DiffErrorKind::BadFileHeader))?;
            let new_line = lines[i + 1].trim_end_matches('\r');
            let new = header_path(&new_line[4..]).map_err(|()| error(i + 1, DiffErrorKind::BadFileHeader))?;
            current = Some(new.map(|new| {
                let strip =
                    git_prefixes.unwrap_or_else(|| old.as_deref().is_none_or(|old| old.starts_with("a/")));
                let path = match new.strip_prefix("b/") {
                    Some(rest) if strip => rest.to_string(),
                    _ => new,
                };
                *by_path.entry(path.clone()).or_insert_with(|| {
                    files.push((path, Vec::new()));
                    files.len() - 1
                })
            }));
            i += 2;
            continue;
        } else if current.is_some()
            && (header.starts_with('+') || header.starts_with('-'))
            && header != "-- "
            && header != "--"
        {
            // Past the counts of the hunk before; `-- ` is format-patch's
            // signature separator.
            return Err(error(i, DiffErrorKind::UnexpectedHunkLine));
        } else if header.starts_with("+++ ") {
            return Err(error(i, DiffErrorKind::BadFileHeader));
        } else if header.starts_with("@@") {
            let (old_count, new_start, new_count) =
                hunk_header(header).ok_or_else(|| error(i, DiffErrorKind::BadHunkHeader))?;
            if current.is_none() {
                return Err(error(i, DiffErrorKind::HunkOutsideFile));
            }
            hunk = Some(Hunk {
                old_left: old_count,
                new_left: new_count,
                next_line: new_start,
                header_line: i,
            });
        }
        i += 1;
    }
    if let Some(h) = hunk.filter(|h| h.old_left > 0 || h.new_left > 0) {
        return Err(error(
            h.header_line,
            DiffErrorKind::Truncated {
                old: h.old_left,
                new: h.new_left,
            },
        ));
    }
    if !saw_header && lines.iter().any(|l| !l.trim().is_empty()) {
        return Err(error(0, DiffErrorKind::NotADiff));
    }
    Ok(files
        .into_iter()
        .filter(|(_, added)| !added.is_empty())
        .map(|(path, added)| DiffFile {
            path,
            added: ranges(added),
        })
        .collect())
}

/// Parses `@@ -A[,B] +C[,D] @@[ section]` into (B, C, D); a missing count is 1.
fn hunk_header(line: &str) -> Option<(u32, u32, u32)> {
    let rest = line.strip_prefix("@@ -")?;
    let (ranges, _section) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let count = |range: &str| -> Option<(u32, u32)> {
        match range.split_once(',') {
            Some((start, count)) => Some((start.parse().ok()?, count.parse().ok()?)),
            None => Some((range.parse().ok()?, 1)),
        }
    };
    let (_, old_count) = count(old)?;
    let (new_start, new_count) = count(new)?;
    if new_start == 0 && new_count > 0 {
        return None;
    }
    Some((old_count, new_start, new_count))
}

/// The path of a `---`/`+++` header (what follows `--- `): git's C-style
/// quoting undone, anything after a tab (a timestamp) cut. `None` for
/// `/dev/null`; `Err` when there is no path or a quote is not closed.
fn header_path(text: &str) -> Result<Option<String>, ()> {
    let path = if let Some(quoted) = text.strip_prefix('"') {
        unquote(quoted)?
    } else {
        text.split('\t').next().unwrap_or_default().to_string()
    };
    match path.as_str() {
        "" => Err(()),
        "/dev/null" => Ok(None),
        _ => Ok(Some(path)),
    }
}

/// Undoes git's quoting of the text after the opening `"`: `\"`, `\\`,
/// `\t`, `\n` and the like, and octal bytes (`\303\251` is `é`).
fn unquote(text: &str) -> Result<String, ()> {
    let mut bytes = Vec::new();
    let mut chars = text.bytes().peekable();
    while let Some(b) = chars.next() {
        match b {
            b'"' => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            b'\\' => {
                let escaped = chars.next().ok_or(())?;
                let byte = match escaped {
                    b'a' => 7,
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'v' => 11,
                    b'f' => 12,
                    b'r' => b'\r',
                    b'0'..=b'7' => {
                        let mut value = u32::from(escaped - b'0');
                        for _ in 0..2 {
                            match chars.peek() {
                                Some(&d @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(d - b'0');
                                    chars.next();
                                }
                                _ => break,
                            }
                        }
                        u8::try_from(value).map_err(|_| ())?
                    }
                    other => other,
                };
                bytes.push(byte);
            }
            _ => bytes.push(b),
        }
    }
    Err(())
}

/// Sorted, merged inclusive ranges of `lines`.
fn ranges(mut lines: Vec<u32>) -> Vec<(u32, u32)> {
    lines.sort_unstable();
    lines.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for line in lines {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == line => *end = line,
            _ => ranges.push((line, line)),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `git diff --cached -M` of a real repository: a quoted non-ASCII path
    /// with a space, two hunks, `\ No newline at end of file`, a rename with
    /// a change, a new file, a deleted file, a pure rename, a mode change.
    const GIT_DIFF: &str = include_str!("../../tests/data/review-git.diff");

    fn file(path: &str, added: &[(u32, u32)]) -> DiffFile {
        DiffFile {
            path: path.into(),
            added: added.to_vec(),
        }
    }

    #[test]
    fn reads_real_git_diff_output() {
        assert_eq!(
            parse(GIT_DIFF).unwrap(),
            [
                file("caf\u{e9} file.go", &[(1, 1)]),
                file("main.go", &[(6, 8), (24, 24), (26, 27)]),
                file("notes.txt", &[(2, 2)]),
                file("pkg/helpers.go", &[(4, 4)]),
                file("pkg/new.go", &[(1, 5)]),
            ]
        );
    }

    #[test]
    fn crlf_line_endings_read_the_same() {
        let crlf = GIT_DIFF.replace('\n', "\r\n");
        assert_eq!(parse(&crlf).unwrap(), parse(GIT_DIFF).unwrap());
    }

    #[test]
    fn reads_plain_diff_u_with_timestamps_and_counts_left_out() {
        let diff = "\
--- old/a.c\t2024-05-01 10:00:00.000000000 +0200
+++ new/a.c\t2024-05-02 10:00:00.000000000 +0200
@@ -1 +1 @@
-int x;
+int y;
@@ -10,2 +10,3 @@
 a
+b

";
        // Not git: the `new/` directory is part of the path. The last hunk's
        // empty line is a context line whose space was stripped.
        assert_eq!(parse(diff).unwrap(), [file("new/a.c", &[(1, 1), (11, 11)])]);
    }

    #[test]
    fn hunk_counts_keep_header_lookalikes_as_content() {
        // An SQL comment `-- x` removed and `++ y` added look like headers.
        let diff = "\
diff --git a/q.sql b/q.sql
--- a/q.sql
+++ b/q.sql
@@ -1,2 +1,3 @@
--- old comment
+++ new comment
+@@ not a hunk
 select 1;
";
        assert_eq!(parse(diff).unwrap(), [file("q.sql", &[(1, 2)])]);
    }

    #[test]
    fn git_show_preamble_and_binary_files_are_skipped() {
        let diff = "\
commit 0123456789abcdef
Author: A <a@example.com>

    Fix: the --- and +++ in a message are fine

diff --git a/logo.png b/logo.png
index 1111111..2222222 100644
Binary files a/logo.png and b/logo.png differ
diff --git a/b/x.go b/b/x.go
--- a/b/x.go
+++ b/b/x.go
@@ -0,0 +1 @@
+package b
";
        assert_eq!(parse(diff).unwrap(), [file("b/x.go", &[(1, 1)])]);
        // --no-prefix: the path is taken as it is.
        let no_prefix = "diff --git b/x.go b/x.go\n--- b/x.go\n+++ b/x.go\n@@ -0,0 +1 @@\n+x\n";
        assert_eq!(parse(no_prefix).unwrap(), [file("b/x.go", &[(1, 1)])]);
    }

    #[test]
    fn reads_format_patch_output_with_its_signature() {
        let patch = "\
From 0123456789abcdef Mon Sep 17 00:00:00 2001
Subject: [PATCH] Fix

---
 x.go | 1 +
 1 file changed, 1 insertion(+)

diff --git a/x.go b/x.go
--- a/x.go
+++ b/x.go
@@ -1 +1,2 @@
 package x
+var y int
-- 
2.43.0
";
        assert_eq!(parse(patch).unwrap(), [file("x.go", &[(2, 2)])]);
    }

    #[test]
    fn the_same_file_twice_is_merged() {
        let one = "--- a/x\n+++ b/x\n@@ -1,0 +2,2 @@\n+a\n+b\n";
        let two = "--- a/x\n+++ b/x\n@@ -5,0 +4 @@\n+c\n";
        assert_eq!(parse(&format!("{one}{two}")).unwrap(), [file("x", &[(2, 4)])]);
    }

    #[test]
    fn empty_and_change_free_diffs_have_no_files() {
        assert_eq!(parse("").unwrap(), []);
        assert_eq!(parse("\n\n").unwrap(), []);
        let deletions = "--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n-a\n b\n";
        assert_eq!(parse(deletions).unwrap(), []);
    }

    #[test]
    fn quoted_paths_are_unquoted() {
        assert_eq!(
            header_path("\"b/a\\\"q\\\\\\t.go\"\t").unwrap().unwrap(),
            "b/a\"q\\\t.go"
        );
        assert_eq!(
            header_path("\"b/caf\\303\\251\"").unwrap().unwrap(),
            "b/caf\u{e9}"
        );
        assert_eq!(header_path("/dev/null"), Ok(None));
        assert_eq!(header_path("\"b/open"), Err(()));
        assert_eq!(header_path(""), Err(()));
    }

    fn parse_error(diff: &str) -> DiffError {
        parse(diff).unwrap_err()
    }

    #[test]
    fn malformed_diffs_name_the_line() {
        let e = parse_error("--- a/x\n+++ b/x\n@@ -1,2 +1,x @@\n");
        assert_eq!((e.line, e.kind.clone()), (3, DiffErrorKind::BadHunkHeader));
        assert_eq!(
            e.to_string(),
            "malformed diff at line 3 (\"@@ -1,2 +1,x @@\"): expected a hunk header \
             `@@ -START[,COUNT] +START[,COUNT] @@` (combined diffs are not supported)"
        );
        let combined = "diff --cc x\n--- a/x\n+++ b/x\n@@@ -1,1 -1,1 +1,1 @@@\n";
        assert_eq!(parse_error(combined).kind, DiffErrorKind::BadHunkHeader);

        let e = parse_error("diff --git a/x b/x\n@@ -1 +1 @@\n-a\n+b\n");
        assert_eq!((e.line, e.kind), (2, DiffErrorKind::HunkOutsideFile));

        let e = parse_error("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n");
        assert_eq!((e.line, e.kind), (3, DiffErrorKind::Truncated { old: 1, new: 1 }));
        assert!(parse_error("--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n")
            .to_string()
            .contains("ends inside this hunk, 2 old and 2 new lines short"));

        let e = parse_error("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n*b\n");
        assert_eq!(
            (e.line, e.text.as_str(), e.kind),
            (5, "*b", DiffErrorKind::UnexpectedHunkLine)
        );
        // More added lines than the header counts.
        // More lines than the header counts.
        let e = parse_error("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n");
        assert_eq!((e.line, e.kind), (6, DiffErrorKind::UnexpectedHunkLine));
        let e = parse_error("--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n+b\n+c\n-d\n");
        assert_eq!((e.line, e.kind), (7, DiffErrorKind::UnexpectedHunkLine));
        let e = parse_error("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+++ c\n");
        assert_eq!((e.line, e.kind), (6, DiffErrorKind::UnexpectedHunkLine));

        let e = parse_error("+++ b/x\n@@ -1 +1 @@\n");
        assert_eq!((e.line, e.kind), (1, DiffErrorKind::BadFileHeader));

        let e = parse_error("package main\n\nfunc main() {}\n");
        assert_eq!((e.line, e.kind.clone()), (1, DiffErrorKind::NotADiff));
        assert!(e.to_string().contains("this is not a unified diff"), "{e}");
    }
}
