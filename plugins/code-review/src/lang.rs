//! Which language a file is written in: from the caller's hint, else the
//! file's extension or name, else its `#!` line.

/// A language the prompt names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Short id, used as the code fence's info string (`go`, `rust`, `cpp`).
    pub id: String,
    /// Name for people and the prompt (`Go`, `Rust`, `C++`).
    pub name: String,
}

/// (id, name, extensions and aliases), lowercase.
const TABLE: &[(&str, &str, &[&str])] = &[
    ("go", "Go", &["go", "golang"]),
    ("rust", "Rust", &["rs", "rust"]),
    (
        "python",
        "Python",
        &["py", "pyi", "pyw", "python", "python3", "py3"],
    ),
    (
        "javascript",
        "JavaScript",
        &["js", "mjs", "cjs", "jsx", "javascript", "node"],
    ),
    (
        "typescript",
        "TypeScript",
        &["ts", "mts", "cts", "tsx", "typescript"],
    ),
    ("java", "Java", &["java"]),
    ("c", "C", &["c", "h"]),
    (
        "cpp",
        "C++",
        &["cpp", "cc", "cxx", "c++", "hpp", "hh", "hxx", "h++", "ipp", "ino"],
    ),
    ("csharp", "C#", &["cs", "csharp", "c#"]),
    ("ruby", "Ruby", &["rb", "ruby", "rake", "gemspec"]),
    ("php", "PHP", &["php"]),
    ("kotlin", "Kotlin", &["kt", "kts", "kotlin"]),
    ("swift", "Swift", &["swift"]),
    ("shell", "Shell", &["sh", "bash", "zsh", "ksh", "shell"]),
    ("scala", "Scala", &["scala", "sc"]),
    ("lua", "Lua", &["lua"]),
    ("zig", "Zig", &["zig"]),
    ("perl", "Perl", &["pl", "pm", "perl"]),
    ("sql", "SQL", &["sql"]),
    ("dart", "Dart", &["dart"]),
    ("elixir", "Elixir", &["ex", "exs", "elixir"]),
    ("haskell", "Haskell", &["hs", "haskell"]),
    ("objectivec", "Objective-C", &["m", "mm", "objc", "objective-c"]),
    ("r", "R", &["r"]),
    ("powershell", "PowerShell", &["ps1", "psm1", "powershell"]),
    ("terraform", "Terraform", &["tf", "hcl", "terraform"]),
    ("yaml", "YAML", &["yaml", "yml"]),
    ("dockerfile", "Dockerfile", &["dockerfile"]),
    ("make", "Makefile", &["mk", "makefile", "make"]),
];

impl Language {
    /// The language an id, name, alias or extension stands for
    /// (case-insensitive); `None` when unknown.
    pub fn lookup(word: &str) -> Option<Language> {
        let word = word.trim().trim_start_matches('.').to_ascii_lowercase();
        TABLE
            .iter()
            .find(|(id, name, aliases)| {
                *id == word || name.eq_ignore_ascii_case(&word) || aliases.contains(&word.as_str())
            })
            .map(|(id, name, _)| Language {
                id: id.to_string(),
                name: name.to_string(),
            })
    }

    /// What the prompt says when nothing identifies the language.
    pub fn unknown() -> Language {
        Language {
            id: "text".into(),
            name: "source".into(),
        }
    }

    /// The language of `path` with contents `source`: `hint` when given (an
    /// unknown hint is used verbatim as the name), else the extension (or a
    /// well-known file name such as `Dockerfile`), else a `#!` interpreter,
    /// else [`Language::unknown`].
    pub fn detect(path: &str, hint: Option<&str>, source: &str) -> Language {
        if let Some(hint) = hint.map(str::trim).filter(|h| !h.is_empty()) {
            return Language::lookup(hint).unwrap_or_else(|| Language {
                id: hint
                    .to_ascii_lowercase()
                    .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
                name: hint.to_string(),
            });
        }
        let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let by_name = match file.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => Language::lookup(ext),
            // `Dockerfile`, `Makefile`, or a dotfile such as `.bashrc`.
            _ => Language::lookup(file.trim_start_matches('.')).or_else(|| {
                file.strip_prefix(".")
                    .and_then(|f| f.strip_suffix("rc"))
                    .and_then(Language::lookup)
            }),
        };
        by_name
            .or_else(|| shebang(source))
            .unwrap_or_else(Language::unknown)
    }
}

/// The language of a `#!` line: `#!/bin/sh`, `#!/usr/bin/env python3 -u`.
fn shebang(source: &str) -> Option<Language> {
    let line = source.lines().next()?.strip_prefix("#!")?;
    let mut words = line.split_whitespace();
    let mut program = words.next()?.rsplit('/').next()?;
    if program == "env" {
        program = words.find(|w| !w.starts_with('-'))?;
    }
    // python3.12 -> python3, node18 -> node
    let trimmed = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    Language::lookup(program).or_else(|| Language::lookup(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(path: &str, hint: Option<&str>, source: &str) -> String {
        Language::detect(path, hint, source).id
    }

    #[test]
    fn extensions() {
        for (path, want) in [
            ("examples/buggy.go", "go"),
            ("src/lib.rs", "rust"),
            ("a/b.py", "python"),
            ("x.js", "javascript"),
            ("x.tsx", "typescript"),
            ("Main.java", "java"),
            ("x.c", "c"),
            ("x.h", "c"),
            ("x.cpp", "cpp"),
            ("x.cc", "cpp"),
            ("x.rb", "ruby"),
            ("x.php", "php"),
            ("Program.cs", "csharp"),
            ("x.kt", "kotlin"),
            ("x.swift", "swift"),
            ("deploy.sh", "shell"),
            ("C:\\src\\Main.GO", "go"),
            ("Dockerfile", "dockerfile"),
            ("Makefile", "make"),
            (".bashrc", "shell"),
        ] {
            assert_eq!(id(path, None, ""), want, "{path}");
        }
    }

    #[test]
    fn names_for_the_prompt() {
        assert_eq!(Language::detect("a.go", None, "").name, "Go");
        assert_eq!(Language::detect("a.cpp", None, "").name, "C++");
        assert_eq!(Language::detect("a.cs", None, "").name, "C#");
    }

    #[test]
    fn hint_wins_over_the_extension() {
        assert_eq!(id("script.txt", Some("go"), ""), "go");
        assert_eq!(id("x.go", Some("Python"), ""), "python");
        assert_eq!(id("x.go", Some("golang"), ""), "go");
        // An unknown hint is passed on as given.
        let l = Language::detect("x", Some("COBOL-85"), "");
        assert_eq!((l.id.as_str(), l.name.as_str()), ("cobol85", "COBOL-85"));
        // A blank hint is no hint.
        assert_eq!(id("x.rs", Some(" "), ""), "rust");
    }

    #[test]
    fn shebang_when_there_is_no_extension() {
        assert_eq!(id("bin/deploy", None, "#!/bin/bash\necho hi\n"), "shell");
        assert_eq!(id("tool", None, "#!/usr/bin/env python3\n"), "python");
        assert_eq!(
            id("tool", None, "#!/usr/bin/env -S node --harmony\n"),
            "javascript"
        );
        assert_eq!(id("tool", None, "#!/usr/bin/python3.12\n"), "python");
    }

    #[test]
    fn unknown_is_plain_source() {
        assert_eq!(Language::detect("notes.xyz", None, "hello"), Language::unknown());
        assert_eq!(Language::detect("README", None, "hello"), Language::unknown());
    }
}
